//! The core's conformance suite against a real PostgreSQL schema per check.

user_core::conformance_tests!(crate::stores);
