//! How the services write the [`AuditLog`](crate::ports::AuditLog): after the change it
//! records, never failing the request. A store that refuses an event is logged at ERROR and
//! counted in [`AUDIT_WRITE_FAILURES_TOTAL`](crate::metrics::AUDIT_WRITE_FAILURES_TOTAL), so
//! that an operator sees a gap instead of users seeing errors.

use crate::Ports;
use crate::domain::{AuditEvent, AuditKind};
use crate::error::report;
use crate::metrics as names;

impl Ports {
    /// A successful event of `kind`, now.
    pub(crate) fn event(&self, kind: AuditKind) -> AuditEvent {
        AuditEvent::new(kind, self.clock.now())
    }

    /// Appends `event` to the audit log; a failure is logged and counted, not returned.
    pub(crate) async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.audit.record(&event).await {
            metrics::counter!(names::AUDIT_WRITE_FAILURES_TOTAL).increment(1);
            tracing::error!(
                kind = event.kind.as_str(),
                outcome = event.outcome.as_str(),
                error = %report(&e),
                "audit event not recorded"
            );
        }
    }
}
