//! `user.UserService`: the legacy RPCs, byte-compatible, and the new self-service ones.
//! Each RPC converts, calls a core service, and maps errors with [`ToStatus`].

use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};
use user_core::auth::{Credentials, RegisterUser, TokenPair};
use user_core::domain::{AuditQuery, SessionId, UserQuery};
use user_core::error::{ValidationError, ValidationErrors};
use user_core::users::{ChangePassword, UpdateProfile};

use crate::GrpcState;
use crate::auth::{caller, caller_with_user, client_info};
use crate::convert::{self, non_empty};
use crate::pb::{self, user_service_server::UserService};
use crate::status::{OrStatus, ToStatus};

/// The implementation of `user.UserService`.
pub(crate) struct UserApi {
    pub(crate) state: GrpcState,
    pub(crate) list_all_cap: u32,
    pub(crate) trusted_proxies: user_core::domain::TrustedProxies,
}

fn login_response(t: TokenPair) -> pb::LoginUserResponse {
    pb::LoginUserResponse {
        token: t.access_token.expose_secret().to_owned(),
        refresh_token: t.refresh_token.expose_secret().to_owned(),
        expires_in: i64::try_from(t.expires_in.as_secs()).unwrap_or(i64::MAX),
        token_type: "Bearer".to_owned(),
        user: Some(t.user.into()),
        device_token: t
            .device_token
            .map(|d| d.expose_secret().to_owned())
            .unwrap_or_default(),
    }
}

/// ListMyEvents' `limit`: 0 means [`AuditQuery::RECENT_DEFAULT`], at most [`AuditQuery::MAX_LIMIT`].
fn my_events_limit(limit: u32) -> Result<u32, ValidationError> {
    match limit {
        0 => Ok(AuditQuery::RECENT_DEFAULT),
        n if n <= AuditQuery::MAX_LIMIT => Ok(n),
        _ => Err(ValidationError::new(
            "limit",
            "out_of_range",
            format!(
                "must be at most {} (0 means {})",
                AuditQuery::MAX_LIMIT,
                AuditQuery::RECENT_DEFAULT
            ),
        )),
    }
}

fn required(field: &'static str, value: &str, errors: &mut ValidationErrors) {
    if value.trim().is_empty() {
        errors.push(ValidationError::required(field));
    }
}

impl UserApi {
    /// The caller, and the user a legacy request names: an empty `user_id` means the caller.
    async fn target<T>(
        &self,
        request: &Request<T>,
        user_id: &str,
    ) -> Result<(user_core::domain::Actor, user_core::domain::UserId), Status> {
        let actor = caller(&self.state.auth, request, &self.trusted_proxies).await?;
        let id = if user_id.trim().is_empty() {
            actor.user_id
        } else {
            convert::user_id("user_id", user_id).or_status()?
        };
        Ok((actor, id))
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn register_user(
        &self,
        request: Request<pb::RegisterUserRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let r = request.into_inner();
        let form = RegisterUser {
            username: r.username,
            email: r.email,
            password: SecretString::from(r.password),
            display_name: non_empty(r.display_name),
        };
        let user = self.state.auth.register(form, &client).await.or_status()?;
        Ok(Response::new(user.into()))
    }

    async fn login_user(
        &self,
        request: Request<pb::LoginUserRequest>,
    ) -> Result<Response<pb::LoginUserResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        if r.email.trim().is_empty() && r.username.trim().is_empty() {
            errors.push(ValidationError::new(
                "email",
                "required",
                "an email or a username is required",
            ));
        }
        required("password", &r.password, &mut errors);
        errors.into_result().or_status()?;
        let identifier = non_empty(r.email).unwrap_or(r.username);
        let credentials = Credentials::new(identifier, SecretString::from(r.password))
            .with_device_token(non_empty(r.device_token).map(SecretString::from));
        let tokens = self
            .state
            .auth
            .login(credentials, client)
            .await
            .or_status()?;
        Ok(Response::new(login_response(tokens)))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        // The caller's own record comes with the session check: one store read.
        let (actor, me) =
            caller_with_user(&self.state.auth, &request, &self.trusted_proxies).await?;
        let requested = request.get_ref().user_id.trim();
        let id = if requested.is_empty() {
            actor.user_id
        } else {
            convert::user_id("user_id", requested).or_status()?
        };
        if id == actor.user_id {
            return Ok(Response::new(me.into()));
        }
        let user = self.state.users.get(&actor, id).await.or_status()?;
        Ok(Response::new(user.into()))
    }

    async fn update_user_profile(
        &self,
        request: Request<pb::UpdateUserProfileRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let (actor, id) = self.target(&request, &request.get_ref().user_id).await?;
        let r = request.into_inner();
        let edit = UpdateProfile {
            username: non_empty(r.username),
            email: non_empty(r.email),
            display_name: r.display_name,
        };
        let user = self
            .state
            .users
            .update_profile(&actor, id, edit)
            .await
            .or_status()?;
        Ok(Response::new(user.into()))
    }

    async fn list_all_users(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let admin = self.state.users.as_admin(&actor).or_status()?;
        let mut users = Vec::new();
        let mut query = UserQuery {
            limit: UserQuery::MAX_LIMIT,
            ..UserQuery::default()
        };
        let cap = self.list_all_cap as usize;
        while users.len() < cap {
            query.limit = UserQuery::MAX_LIMIT.min(u32::try_from(cap - users.len()).unwrap_or(0));
            let page = admin.list(&query).await.or_status()?;
            users.extend(page.users.into_iter().map(pb::User::from));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        Ok(Response::new(pb::ListUsersResponse { users }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::LoginUserResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        required("refresh_token", &r.refresh_token, &mut errors);
        errors.into_result().or_status()?;
        let token = SecretString::from(r.refresh_token);
        let tokens = self.state.auth.refresh(&token, &client).await.or_status()?;
        Ok(Response::new(login_response(tokens)))
    }

    async fn logout(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        self.state.auth.logout(&actor).await.or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn logout_everywhere(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::LogoutEverywhereResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let sessions_ended = self
            .state
            .auth
            .logout_everywhere(&actor)
            .await
            .or_status()?;
        Ok(Response::new(pb::LogoutEverywhereResponse {
            sessions_ended,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        required("current_password", &r.current_password, &mut errors);
        errors.into_result().or_status()?;
        let change = ChangePassword {
            current_password: SecretString::from(r.current_password),
            new_password: SecretString::from(r.new_password),
        };
        self.state
            .users
            .change_password(&actor, change)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        required("password", &r.password, &mut errors);
        errors.into_result().or_status()?;
        let password = SecretString::from(r.password);
        self.state
            .users
            .delete_own_account(&actor, &password)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let sessions = self.state.users.sessions(&actor).await.or_status()?;
        let sessions = sessions
            .into_iter()
            .map(|s| convert::session(s, actor.session_id))
            .collect();
        Ok(Response::new(pb::ListSessionsResponse { sessions }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let id = request
            .get_ref()
            .session_id
            .parse::<SessionId>()
            .map_err(|e| ValidationErrors::from(e).to_status())?;
        self.state
            .users
            .revoke_session(&actor, id)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let email = request.into_inner().email;
        self.state
            .account
            .request_password_reset(&email, &client)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let r = request.into_inner();
        let token = SecretString::from(r.token);
        let user = self
            .state
            .account
            .reset_password(&token, SecretString::from(r.new_password), &client)
            .await
            .or_status()?;
        Ok(Response::new(user.into()))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::UserResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let token = SecretString::from(request.into_inner().token);
        let user = self
            .state
            .account
            .verify_email(&token, &client)
            .await
            .or_status()?;
        Ok(Response::new(user.into()))
    }

    async fn resend_verification(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        self.state
            .account
            .resend_verification(&actor, &actor.client)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn request_verification(
        &self,
        request: Request<pb::RequestVerificationRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let email = request.into_inner().email;
        self.state
            .account
            .request_verification(&email, &client)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
    }

    async fn list_my_events(
        &self,
        request: Request<pb::ListMyEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let limit = my_events_limit(request.get_ref().limit)
            .map_err(|e| ValidationErrors::from(e).to_status())?;
        let events = self
            .state
            .users
            .recent_events(&actor, limit)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.into_iter().map(pb::AuditEvent::from).collect(),
            next_page_token: String::new(),
        }))
    }

    async fn export_my_data(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::ExportMyDataResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let data = self.state.users.export_own_data(&actor).await.or_status()?;
        Ok(Response::new(pb::ExportMyDataResponse {
            user: Some(data.user.into()),
            sessions: data
                .sessions
                .into_iter()
                .map(|s| convert::session(s, actor.session_id))
                .collect(),
            events: data.events.into_iter().map(pb::AuditEvent::from).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_events_limit_defaults_and_caps() {
        assert_eq!(my_events_limit(0).unwrap(), AuditQuery::RECENT_DEFAULT);
        assert_eq!(my_events_limit(1).unwrap(), 1);
        assert_eq!(my_events_limit(200).unwrap(), 200);
        let e = my_events_limit(201).unwrap_err();
        assert_eq!((e.field, e.code), ("limit", "out_of_range"));
    }
}
