//! The core's conformance suite against a real PostgreSQL schema per check, at PostgreSQL's
//! default isolation and at SERIALIZABLE (CockroachDB's), where the retries take part.

mod read_committed {
    user_core::conformance_tests!(crate::stores);
}

mod serializable {
    user_core::conformance_tests!(crate::serializable_stores);
}
