//! Embedded MQTT broker with mutual-TLS identity and policy enforcement.
#![forbid(unsafe_code)]
