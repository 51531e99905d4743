//! The name of every metric user-management records, each with its meaning and labels. The
//! services record theirs through the [`metrics`](https://docs.rs/metrics) facade; the
//! adapters record the request metrics behind their `metrics` feature; the application
//! installs the recorder (for example Prometheus) and decides where the numbers go.
//!
//! Every label takes values from a fixed set, so no client can add series: request metrics
//! are labelled by route template or served RPC, never by the raw path.

/// Counter: HTTP requests answered, by `method` (a standard method, else `other`), `route`
/// (the matched route template, or `unmatched`) and `status` (the response status code).
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";

/// Histogram, seconds: time to answer an HTTP request, by `method` and `route` as in
/// [`HTTP_REQUESTS_TOTAL`].
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// Counter: gRPC calls answered, by `method` (the served `/package.Service/Method`, else
/// `unknown`) and `code` (the gRPC status code as a number, or `transport_error`).
pub const GRPC_REQUESTS_TOTAL: &str = "grpc_requests_total";

/// Histogram, seconds: time to the response headers of a gRPC call, by `method` as in
/// [`GRPC_REQUESTS_TOTAL`].
pub const GRPC_REQUEST_DURATION_SECONDS: &str = "grpc_request_duration_seconds";

/// Counter: sign-in attempts by `outcome`: `success` (a session was started: after the
/// password, or after the second step for accounts with a second factor),
/// `invalid_credentials` (unknown identifier, wrong password or disabled account alike),
/// `invalid_code` (a wrong second-factor code), `email_not_verified`, `throttled` (the guess
/// budget is locked) or `rate_limited` (the client address sent too many).
pub const LOGINS_TOTAL: &str = "user_logins_total";

/// Counter: guess budgets locked by a failed sign-in (one per lock, not per refused attempt).
pub const LOCKOUTS_TOTAL: &str = "user_lockouts_total";

/// Counter: requests refused by a per-address rate limit, by `what` (`sign-in` or
/// `registration`).
pub const RATE_LIMITED_TOTAL: &str = "user_rate_limited_total";

/// Gauge: password hashes running now on the hasher's worker threads.
pub const HASH_RUNNING: &str = "user_hash_running";

/// Gauge: password hashes admitted and waiting for a worker thread.
pub const HASH_QUEUE_DEPTH: &str = "user_hash_queue_depth";

/// Histogram, seconds: how long an admitted hash waited for a worker thread.
pub const HASH_WAIT_SECONDS: &str = "user_hash_wait_seconds";

/// Counter: hashes turned away because the queue was full (`Overloaded`: 503 /
/// `RESOURCE_EXHAUSTED`).
pub const HASH_REJECTED_TOTAL: &str = "user_hash_rejected_total";

/// Gauge: sessions (browser and token) not ended, as counted by the session store when the
/// application calls [`maintenance::record_active_sessions`](crate::maintenance::record_active_sessions)
/// (the server example does on each scrape of `/metrics`).
pub const SESSIONS_ACTIVE: &str = "user_sessions_active";

/// Counter: mails the outbox worker settled, by `outcome`: `sent` (the relay accepted it),
/// `retry` (a temporary failure: it is due again later), `gave_up` (refused for good, or out
/// of attempts: it became a dead letter) or `lost` (its claim ran out before it was settled,
/// so another worker may send it again).
pub const MAIL_SENT_TOTAL: &str = "user_mail_sent_total";

/// Gauge: mails due in the outbox and not being sent, as counted when the application calls
/// [`mail::record_pending_mail`](crate::mail::record_pending_mail). A backlog that keeps
/// growing means delivery falls behind or the relay is down.
pub const MAIL_PENDING: &str = "user_mail_pending";

/// Counter: audit events the store refused; each is logged at ERROR with its kind. Any
/// increase is a gap in the audit log.
pub const AUDIT_WRITE_FAILURES_TOTAL: &str = "user_audit_write_failures_total";

/// Every name above, for checks that a name is ours.
pub const ALL: &[&str] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    GRPC_REQUESTS_TOTAL,
    GRPC_REQUEST_DURATION_SECONDS,
    LOGINS_TOTAL,
    LOCKOUTS_TOTAL,
    RATE_LIMITED_TOTAL,
    HASH_RUNNING,
    HASH_QUEUE_DEPTH,
    HASH_WAIT_SECONDS,
    HASH_REJECTED_TOTAL,
    SESSIONS_ACTIVE,
    MAIL_SENT_TOTAL,
    MAIL_PENDING,
    AUDIT_WRITE_FAILURES_TOTAL,
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ALL;

    #[test]
    fn names_are_distinct_prometheus_names() {
        let unique: HashSet<_> = ALL.iter().collect();
        assert_eq!(unique.len(), ALL.len());
        for name in ALL {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(!name.starts_with(|c: char| c.is_ascii_digit()), "{name}");
        }
    }
}
