//! Security events on the pages: the admin's audit log (`/admin/audit`, filters and keyset
//! pages) and the "recent security activity" of the profile, with readable names for kinds.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};
use user_core::domain::{AuditEvent, AuditFilter, AuditKind, AuditOutcome, AuditQuery, UserId};
use user_core::error::ValidationErrors;

use super::admin::admin;
use super::error::PageError;
use super::views::{field_errors, time, v};
use super::web::Web;

/// What a person reads for a kind of event.
pub(crate) fn kind_label(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::Registered => "Account created",
        AuditKind::SignIn => "Sign-in",
        AuditKind::LockoutStarted => "Sign-in locked after failed attempts",
        AuditKind::Unlocked => "Sign-in unlocked by an admin",
        AuditKind::Logout => "Signed out",
        AuditKind::LogoutEverywhere => "Signed out everywhere",
        AuditKind::SessionRevoked => "Another session signed out",
        AuditKind::RefreshReuse => "Reused sign-in token: session ended",
        AuditKind::PasswordChanged => "Password change",
        AuditKind::PasswordReset => "Password reset",
        AuditKind::PasswordResetSent => "Password reset link sent by an admin",
        AuditKind::EmailChanged => "Email address changed",
        AuditKind::EmailVerified => "Email address verified",
        AuditKind::ProfileUpdated => "Profile updated",
        AuditKind::RoleChanged => "Role changed",
        AuditKind::Disabled => "Account disabled",
        AuditKind::Enabled => "Account enabled",
        AuditKind::Deleted => "Account deletion",
        AuditKind::DataExported => "Data downloaded",
        AuditKind::SecondFactorEnabled => "Two-step sign-in turned on",
        AuditKind::SecondFactorDisabled => "Two-step sign-in turned off",
        AuditKind::RecoveryCodesRegenerated => "New recovery codes",
    }
}

fn outcome_label(outcome: AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Success => "Succeeded",
        AuditOutcome::Failure => "Failed",
    }
}

/// An event as the templates see it.
#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    at: String,
    kind: &'static str,
    what: &'static str,
    outcome: &'static str,
    outcome_label: &'static str,
    failed: bool,
    actor: Option<String>,
    subject: Option<String>,
    /// Done by someone else than the account's owner (an admin), on the profile.
    by_other: bool,
    identifier: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl EventView {
    fn new(e: AuditEvent, owner: Option<UserId>) -> Self {
        let by_other = owner.is_some_and(|o| e.actor.is_some_and(|a| a != o));
        Self {
            at: time(e.at),
            kind: e.kind.as_str(),
            what: kind_label(e.kind),
            outcome: e.outcome.as_str(),
            outcome_label: outcome_label(e.outcome),
            failed: e.outcome == AuditOutcome::Failure,
            actor: e.actor.map(|a| a.to_string()),
            subject: e.subject.map(|s| s.to_string()),
            by_other,
            identifier: e.identifier,
            ip: e.client.ip,
            user_agent: e.client.user_agent,
            detail: e.detail,
        }
    }

    /// An event of the admin's log, as stored.
    pub(crate) fn logged(e: AuditEvent) -> Self {
        Self::new(e, None)
    }

    /// An event of `owner`'s account on their profile: what an admin did shows without the
    /// admin's address and user agent, and the detail in words (`wrong password`), but for
    /// a sign-in's, which names the guess budget it counted on.
    pub(crate) fn owned(e: AuditEvent, owner: UserId) -> Self {
        let mut view = Self::new(e, Some(owner));
        view.detail = match (view.kind, view.failed) {
            ("sign_in", false) => None,
            _ => view.detail.map(|d| d.replace('_', " ")),
        };
        view
    }
}

/// How many events the profile shows.
pub(crate) const PROFILE_EVENTS: u32 = 10;

/// The filters of the audit log page, as typed.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct AuditPageQuery {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    outcome: String,
    #[serde(default, skip_serializing)]
    page_token: String,
}

impl AuditPageQuery {
    fn filter(&self) -> AuditFilter<'_> {
        AuditFilter {
            subject: Some(&self.subject),
            actor: Some(&self.actor),
            kind: Some(&self.kind),
            outcome: Some(&self.outcome),
            limit: None,
            page_token: Some(&self.page_token),
        }
    }

    /// The address of the page after this one: the same filters, from `token`.
    fn next_url(&self, base: &str, token: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("subject", self.subject.trim()),
            ("actor", self.actor.trim()),
            ("kind", self.kind.trim()),
            ("outcome", self.outcome.trim()),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
        pairs.push(("page_token", token));
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        format!("{base}/admin/audit?{query}")
    }
}

/// What the page says above the filters it refused: the fields show their own problems; a
/// page token has no field, so the sentence says what to do.
fn refused_filters(errors: &ValidationErrors) -> String {
    let bad_token = errors.field("page_token").next().is_some();
    let bad_fields = errors.iter().any(|e| e.field != "page_token");
    let mut sentences = Vec::new();
    if bad_fields {
        sentences.push("Please correct the highlighted filters.");
    }
    if bad_token {
        sentences.push("The link to older events is invalid: start again from the newest events.");
    }
    sentences.join(" ")
}

/// A kind as the filter's select offers it.
#[derive(Debug, Serialize)]
struct KindOption {
    value: &'static str,
    label: &'static str,
}

/// The audit log: a filter form, a page of events newest first, and a link to older ones.
/// A bad filter shows the form again with the problem beside it (422).
pub(crate) async fn audit_log(
    web: Web,
    query: Result<Query<AuditPageQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let Query(q) = query.map_err(|_| PageError::Status(StatusCode::BAD_REQUEST))?;
    let kinds: Vec<KindOption> = AuditKind::ALL
        .iter()
        .map(|k| KindOption {
            value: k.as_str(),
            label: kind_label(*k),
        })
        .collect();
    let (status, events, next_url, errors, error) = match AuditQuery::parse(&q.filter()) {
        Ok(query) => {
            let page = web.state.users.as_admin(&actor)?.audit_log(&query).await?;
            let next_url = page
                .next_page_token()
                .map(|token| q.next_url(&web.base, &token));
            let events: Vec<EventView> = page.events.into_iter().map(EventView::logged).collect();
            (StatusCode::OK, events, next_url, None, None)
        }
        Err(errors) => {
            let error = refused_filters(&errors);
            let errors = field_errors(&errors);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                None,
                Some(errors),
                Some(error),
            )
        }
    };
    let page = context! {
        filters => v(&q),
        kinds => v(&kinds),
        events => v(&events),
        next_url => next_url,
        errors => v(&errors),
        error => error,
        title => "Audit log",
    };
    Ok(web.render(status, "admin_audit.html", page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name() {
        let labels: std::collections::BTreeSet<_> =
            AuditKind::ALL.iter().map(|k| kind_label(*k)).collect();
        assert_eq!(labels.len(), AuditKind::ALL.len());
    }

    #[test]
    fn the_owner_reads_details_in_words() {
        let owner = UserId::new();
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let failed = AuditEvent::new(AuditKind::SignIn, at)
            .on(owner)
            .failed()
            .detail("wrong_password");
        assert_eq!(
            EventView::owned(failed, owner).detail.as_deref(),
            Some("wrong password")
        );
        let signed_in = AuditEvent::new(AuditKind::SignIn, at)
            .on(owner)
            .by_user(owner)
            .detail("device");
        assert_eq!(EventView::owned(signed_in, owner).detail, None);
    }

    #[test]
    fn the_next_page_keeps_the_filters_it_was_given() {
        let q = AuditPageQuery {
            subject: " 0192 ".into(),
            kind: "sign_in".into(),
            page_token: "old".into(),
            ..AuditPageQuery::default()
        };
        assert_eq!(
            q.next_url("/auth", "t&1"),
            "/auth/admin/audit?subject=0192&kind=sign_in&page_token=t%261"
        );
    }
}
