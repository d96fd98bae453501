//! Integration tests of ironroot-broker against real clients: mosquitto_pub / mosquitto_sub
//! (Debian mosquitto-clients) and paho-mqtt (PyPI), with device certificates from a test CA
//! generated at test time.

mod harness;
mod pki;

mod allowed;
mod budget;
mod client_ids;
mod conformance;
mod enforcement;
mod limits;
mod mqtt5;
mod overload;
mod raw;
mod refusals;
mod shared;
mod storm;
mod system;
mod tls;
