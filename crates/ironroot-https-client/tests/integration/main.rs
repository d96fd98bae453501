//! Integration tests of the HTTPS client against real TLS servers on localhost (and plain
//! HTTP mirrors).

mod bounds;
mod plain;
mod server;
