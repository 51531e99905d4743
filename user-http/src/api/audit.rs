//! `/api/v1/admin/audit`: the audit log, for admins.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use user_core::domain::{AuditFilter, AuditQuery};
use user_core::error::{ValidationError, ValidationErrors};
use utoipa::IntoParams;

use super::responses::{AdminOnly, OtherMethod};
use super::schema;
use super::types::{AuditEventBody, AuditLogPage};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::BearerActor;

/// Filters and paging of the audit log; every filter is optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditLogQuery {
    /// Only events concerning this account.
    #[param(schema_with = schema::audit_subject)]
    subject: Option<String>,
    /// Only events done by this user.
    #[param(schema_with = schema::audit_actor)]
    actor: Option<String>,
    /// Only events of this kind.
    #[param(schema_with = schema::audit_kind_filter)]
    kind: Option<String>,
    /// Only events with this outcome.
    #[param(schema_with = schema::audit_outcome_filter)]
    outcome: Option<String>,
    /// Page size.
    #[param(schema_with = schema::audit_page_size)]
    page_size: Option<String>,
    /// `next_page_token` of the previous page, with the same filters.
    page_token: Option<String>,
}

/// A page size as typed: absent or blank for the default, else 1 to `max`.
///
/// # Errors
/// `field` `out_of_range` for anything else.
pub(crate) fn page_size(
    raw: Option<&str>,
    field: &'static str,
    max: u32,
) -> Result<Option<u32>, ValidationError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ValidationError::new(
                field,
                "out_of_range",
                format!("must be a whole number between 1 and {max}"),
            )),
        },
    }
}

impl AuditLogQuery {
    /// The core's query, or every problem with the filters.
    fn parse(&self) -> Result<AuditQuery, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let limit = errors
            .collect(page_size(
                self.page_size.as_deref(),
                "page_size",
                AuditQuery::MAX_LIMIT,
            ))
            .flatten();
        let query = errors.collect(AuditQuery::parse(&AuditFilter {
            subject: self.subject.as_deref(),
            actor: self.actor.as_deref(),
            kind: self.kind.as_deref(),
            outcome: self.outcome.as_deref(),
            limit,
            page_token: self.page_token.as_deref(),
        }));
        errors.into_result()?;
        Ok(query.unwrap_or_default())
    }
}

/// The audit log: keyset pages, newest first, filtered by account, actor, kind and outcome.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditLogQuery),
    responses(
        OtherMethod, AdminOnly,
        (status = 200, description = "A page of events, newest first", body = AuditLogPage),
        (status = 400, description = "`malformed_request`: the query string could not be read", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a filter, the page size or the page token is invalid (`fields` names each: `subject`, `actor`, `kind`, `outcome`, `page_size`, `page_token`)", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    query: Result<Query<AuditLogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    let Query(query) =
        query.map_err(|_| ApiError::malformed("the query string could not be read"))?;
    let page = admin.audit_log(&query.parse()?).await?;
    Ok(Json(AuditLogPage {
        next_page_token: page.next_page_token(),
        events: page.events.into_iter().map(AuditEventBody::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_outside_the_range_are_named() {
        assert_eq!(page_size(None, "page_size", 200), Ok(None));
        assert_eq!(page_size(Some(" "), "page_size", 200), Ok(None));
        assert_eq!(page_size(Some("200"), "page_size", 200), Ok(Some(200)));
        for bad in ["0", "201", "-1", "ten", "1.5"] {
            let e = page_size(Some(bad), "limit", 200).unwrap_err();
            assert_eq!((e.field, e.code), ("limit", "out_of_range"), "{bad}");
        }
    }

    #[test]
    fn every_bad_filter_is_reported_at_once() {
        let query = AuditLogQuery {
            subject: Some("nobody".into()),
            kind: Some("nap".into()),
            page_size: Some("0".into()),
            ..AuditLogQuery::default()
        };
        let fields: Vec<_> = query.parse().unwrap_err().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["page_size", "subject", "kind"]);
        assert_eq!(
            AuditLogQuery::default().parse().unwrap(),
            AuditQuery::default()
        );
    }
}
