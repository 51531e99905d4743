//! The core's race suite against a real PostgreSQL schema per race, at READ COMMITTED
//! (PostgreSQL's default) and again at SERIALIZABLE, where conflicts fail with SQLSTATE
//! 40001 and the store retries.

mod read_committed {
    user_core::race_tests!(crate::race_stores);
}

mod serializable {
    user_core::race_tests!(crate::serializable_race_stores);
}
