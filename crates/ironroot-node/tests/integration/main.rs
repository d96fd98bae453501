//! ironroot-node integration tests: a real node (HTTPS + MQTT over real sockets) on SQLite and
//! PostgreSQL, checked with curl, mosquitto, psql and openssl as outside oracles.

mod harness;
mod limits;
mod metrics;
mod one_follower;
mod overrides;
mod revocation;
mod tls_policy;
