//! AWS IoT Core-style policies for MQTT authorization.
#![forbid(unsafe_code)]
