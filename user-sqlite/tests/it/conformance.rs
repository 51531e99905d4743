//! The core's conformance suite against a real SQLite file per check.

user_core::conformance_tests!(crate::stores);
