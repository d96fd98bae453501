//! Integration tests of the `ironroot` binary, one module per subcommand group.

mod audit;
mod ca;
mod device;
mod policy;
