//! The core's race suite against a real SQLite file per race.

user_core::race_tests!(crate::stores);
