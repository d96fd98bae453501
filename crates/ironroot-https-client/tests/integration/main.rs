//! Integration tests of the HTTPS client against real TLS servers on localhost.

mod bounds;
mod server;
