//! ironroot-control end-to-end tests: a real MqttPlane on a real data directory (CA made by
//! `CaDirectory::init`, as `ironroot ca init` does; SQLite and PostgreSQL registry), real
//! clients (mosquitto_pub/mosquitto_sub, paho-mqtt), registry changes made by another process.

mod harness;
mod paths;
mod registry_changes;
