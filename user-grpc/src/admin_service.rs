//! `user.AdminService`: administration, for admins only.

use tonic::{Request, Response, Status};
use user_core::domain::{Actor, AuditFilter, AuditQuery, UserId, UserQuery};
use user_core::error::{ValidationError, ValidationErrors};
use user_core::users::{AdminUsers, UpdateProfile};

use crate::GrpcState;
use crate::auth::caller;
use crate::convert::{self, non_empty};
use crate::pb::{self, admin_service_server::AdminService};
use crate::status::OrStatus;

/// The implementation of `user.AdminService`.
pub(crate) struct AdminApi {
    pub(crate) state: GrpcState,
    pub(crate) trusted_proxies: user_core::domain::TrustedProxies,
}

impl AdminApi {
    async fn actor<T>(&self, request: &Request<T>) -> Result<Actor, Status> {
        caller(&self.state.auth, request, &self.trusted_proxies).await
    }

    fn admin<'a>(&'a self, actor: &'a Actor) -> Result<AdminUsers<'a>, Status> {
        self.state.users.as_admin(actor).or_status()
    }
}

/// A user id and a required enum value (`*_UNSPECIFIED` counts as missing), with the
/// problems of both reported together.
fn id_and<T>(
    user_id: &str,
    field: &'static str,
    value: Result<Option<T>, ValidationError>,
) -> Result<(UserId, T), Status> {
    let mut errors = ValidationErrors::new();
    let id = errors.collect(convert::user_id("user_id", user_id));
    let value = match errors.collect(value) {
        Some(None) => {
            errors.push(ValidationError::required(field));
            None
        }
        parsed => parsed.flatten(),
    };
    match (id, value) {
        (Some(id), Some(value)) => Ok((id, value)),
        _ => Err(errors).or_status(),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersPage>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        let query = errors.collect(UserQuery::parse(
            Some(&r.search),
            Some(r.page_size),
            Some(&r.page_token),
        ));
        let role = errors.collect(convert::role(r.role));
        let status = errors.collect(convert::status(r.status));
        errors.into_result().or_status()?;
        let query = UserQuery {
            role: role.flatten(),
            status: status.flatten(),
            ..query.unwrap_or_default()
        };
        let page = admin.list(&query).await.or_status()?;
        Ok(Response::new(pb::ListUsersPage {
            next_page_token: page.next_page_token().unwrap_or_default(),
            users: page.users.into_iter().map(pb::User::from).collect(),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::AdminUserRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id).or_status()?;
        Ok(Response::new(admin.get(id).await.or_status()?.into()))
    }

    async fn update_user(
        &self,
        request: Request<pb::AdminUpdateUserRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let r = request.into_inner();
        let id = convert::user_id("user_id", &r.user_id).or_status()?;
        let edit = UpdateProfile {
            username: non_empty(r.username),
            email: non_empty(r.email),
            display_name: r.display_name,
        };
        Ok(Response::new(
            admin.update_profile(id, edit).await.or_status()?.into(),
        ))
    }

    async fn set_role(
        &self,
        request: Request<pb::SetRoleRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let r = request.get_ref();
        let (id, role) = id_and(&r.user_id, "role", convert::role(r.role))?;
        Ok(Response::new(
            admin.set_role(id, role).await.or_status()?.into(),
        ))
    }

    async fn set_status(
        &self,
        request: Request<pb::SetStatusRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let r = request.get_ref();
        let (id, status) = id_and(&r.user_id, "status", convert::status(r.status))?;
        Ok(Response::new(
            admin.set_status(id, status).await.or_status()?.into(),
        ))
    }

    async fn delete_user(
        &self,
        request: Request<pb::AdminUserRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id).or_status()?;
        admin.delete(id).await.or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn unlock_user(
        &self,
        request: Request<pb::AdminUserRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id).or_status()?;
        admin.unlock(id).await.or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn send_password_reset(
        &self,
        request: Request<pb::AdminUserRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = self.actor(&request).await?;
        let id = convert::user_id("user_id", &request.get_ref().user_id).or_status()?;
        self.state
            .account
            .send_password_reset(&actor, id)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let r = request.get_ref();
        let query = AuditQuery::parse(&AuditFilter {
            subject: Some(&r.subject_id),
            actor: Some(&r.actor_id),
            kind: Some(&r.kind),
            outcome: Some(&r.outcome),
            limit: Some(r.page_size),
            page_token: Some(&r.page_token),
        })
        .map_err(|errors| {
            errors
                .renamed("subject", "subject_id")
                .renamed("actor", "actor_id")
        })
        .or_status()?;
        let page = admin.audit_log(&query).await.or_status()?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            next_page_token: page.next_page_token().unwrap_or_default(),
            events: page.events.into_iter().map(pb::AuditEvent::from).collect(),
        }))
    }

    async fn get_second_factor(
        &self,
        request: Request<pb::AdminUserRequest>,
    ) -> Result<Response<pb::SecondFactorStatus>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id).or_status()?;
        let status = admin.second_factor(id).await.or_status()?;
        Ok(Response::new(status.into()))
    }

    async fn reset_second_factor(
        &self,
        request: Request<pb::AdminUserRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = self.actor(&request).await?;
        let admin = self.admin(&actor)?;
        let id = convert::user_id("user_id", &request.get_ref().user_id).or_status()?;
        admin.reset_second_factor(id).await.or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }
}
