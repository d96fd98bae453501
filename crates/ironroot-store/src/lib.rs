//! The ironroot registry on SQLite and PostgreSQL.
#![forbid(unsafe_code)]
