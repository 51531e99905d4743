//! The core's service suite over real PostgreSQL schemas, a fresh one per database a check
//! needs.

user_core::service_tests!(crate::TestDb::new);
