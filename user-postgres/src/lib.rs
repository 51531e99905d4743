//! PostgreSQL storage for user-management (work in progress).
