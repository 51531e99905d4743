//! `user.UserService`: the legacy RPCs, byte-compatible, and the new self-service ones.
//! Each RPC converts, calls a core service, and maps errors with [`ToStatus`].

use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};
use user_core::auth::{Credentials, RegisterUser, SecondStep, SignIn, TokenPair};
use user_core::domain::{AuditQuery, PasswordPolicy, SessionId, UserQuery};
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

/// Longest sign-in challenge or device token accepted (the server issues 43 characters).
const MAX_TOKEN_LEN: usize = 256;

/// Longest second-factor code accepted (six digits, or a recovery code of 29 characters,
/// six groups of four, with room for spaces).
const MAX_CODE_LEN: usize = 64;

/// A field of at most `max` characters; longer ones cannot be right and are refused before
/// any lookup or hashing.
fn at_most(field: &'static str, value: &str, max: usize, errors: &mut ValidationErrors) {
    if value.chars().count() > max {
        errors.push(ValidationError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
}

/// A required field of at most `max` characters.
fn bounded(field: &'static str, value: &str, max: usize, errors: &mut ValidationErrors) {
    if value.trim().is_empty() {
        errors.push(ValidationError::required(field));
    } else {
        at_most(field, value, max, errors);
    }
}

/// The caller's password, for a re-check: required, and no longer than any policy allows.
fn password(field: &'static str, value: &str, errors: &mut ValidationErrors) {
    bounded(field, value, PasswordPolicy::MAX_LENGTH, errors);
}

/// The password and current code of DisableSecondFactor and RegenerateRecoveryCodes: both
/// required, of sane sizes (every problem at once).
fn password_and_code(
    typed_password: String,
    code: String,
) -> Result<(SecretString, SecretString), Status> {
    let mut errors = ValidationErrors::new();
    password("password", &typed_password, &mut errors);
    bounded("code", &code, MAX_CODE_LEN, &mut errors);
    errors.into_result().or_status()?;
    Ok((SecretString::from(typed_password), SecretString::from(code)))
}

/// The credentials of LoginUser and SignIn: an email or a username, and a password.
fn credentials(r: pb::LoginUserRequest) -> Result<Credentials, Status> {
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
    Ok(Credentials::new(identifier, SecretString::from(r.password))
        .with_device_token(non_empty(r.device_token).map(SecretString::from)))
}

/// The second step of a sign-in as sent by CompleteSignIn and CompleteEnrolment.
fn second_step(r: pb::CompleteSignInRequest) -> Result<SecondStep, Status> {
    let mut errors = ValidationErrors::new();
    bounded("challenge", &r.challenge, MAX_TOKEN_LEN, &mut errors);
    bounded("code", &r.code, MAX_CODE_LEN, &mut errors);
    at_most("device_token", &r.device_token, MAX_TOKEN_LEN, &mut errors);
    errors.into_result().or_status()?;
    Ok(SecondStep {
        challenge: SecretString::from(r.challenge),
        code: SecretString::from(r.code),
        device_token: non_empty(r.device_token).map(SecretString::from),
        trust_device: r.trust_device,
    })
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
        let credentials = credentials(request.into_inner())?;
        // One step only: an account with a second factor gets FAILED_PRECONDITION.
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

    async fn sign_in(
        &self,
        request: Request<pb::LoginUserRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let credentials = credentials(request.into_inner())?;
        let result = match self
            .state
            .auth
            .sign_in(credentials, client)
            .await
            .or_status()?
        {
            SignIn::Complete(tokens) => {
                pb::sign_in_response::Result::SignedIn(login_response(tokens))
            }
            SignIn::SecondStep(challenge) => {
                // The challenge was made now: it lives for the policy's whole TTL.
                let ttl = self.state.auth.policy().second_factor.challenge_ttl;
                pb::sign_in_response::Result::SecondStep(pb::SecondFactorChallenge {
                    challenge: challenge.token.expose_secret().to_owned(),
                    step: convert::step(challenge.purpose).to_owned(),
                    expires_in: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
                })
            }
        };
        Ok(Response::new(pb::SignInResponse {
            result: Some(result),
        }))
    }

    async fn complete_sign_in(
        &self,
        request: Request<pb::CompleteSignInRequest>,
    ) -> Result<Response<pb::LoginUserResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let step = second_step(request.into_inner())?;
        let tokens = self
            .state
            .auth
            .complete_sign_in(step, client)
            .await
            .or_status()?;
        Ok(Response::new(login_response(tokens)))
    }

    async fn start_enrolment(
        &self,
        request: Request<pb::StartEnrolmentRequest>,
    ) -> Result<Response<pb::TotpSetup>, Status> {
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        bounded("challenge", &r.challenge, MAX_TOKEN_LEN, &mut errors);
        errors.into_result().or_status()?;
        let challenge = SecretString::from(r.challenge);
        let setup = self
            .state
            .auth
            .start_enrolment(&challenge)
            .await
            .or_status()?;
        Ok(Response::new(setup.into()))
    }

    async fn complete_enrolment(
        &self,
        request: Request<pb::CompleteSignInRequest>,
    ) -> Result<Response<pb::EnrolmentResponse>, Status> {
        let client = client_info(&request, &self.trusted_proxies);
        let step = second_step(request.into_inner())?;
        let (tokens, codes) = self
            .state
            .auth
            .complete_enrolment(step, client)
            .await
            .or_status()?;
        Ok(Response::new(pb::EnrolmentResponse {
            login: Some(login_response(tokens)),
            recovery_codes: convert::recovery_codes(codes),
        }))
    }

    async fn get_second_factor(
        &self,
        request: Request<pb::EmptyRequest>,
    ) -> Result<Response<pb::SecondFactorStatus>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let status = self.state.users.second_factor(&actor).await.or_status()?;
        Ok(Response::new(status.into()))
    }

    async fn start_totp_enrolment(
        &self,
        request: Request<pb::PasswordRequest>,
    ) -> Result<Response<pb::TotpSetup>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        password("password", &r.password, &mut errors);
        errors.into_result().or_status()?;
        let password = SecretString::from(r.password);
        let setup = self
            .state
            .users
            .start_totp_enrolment(&actor, &password)
            .await
            .or_status()?;
        Ok(Response::new(setup.into()))
    }

    async fn confirm_totp_enrolment(
        &self,
        request: Request<pb::CodeRequest>,
    ) -> Result<Response<pb::RecoveryCodesResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let r = request.into_inner();
        let mut errors = ValidationErrors::new();
        bounded("code", &r.code, MAX_CODE_LEN, &mut errors);
        errors.into_result().or_status()?;
        let code = SecretString::from(r.code);
        let codes = self
            .state
            .users
            .confirm_totp_enrolment(&actor, &code)
            .await
            .or_status()?;
        Ok(Response::new(pb::RecoveryCodesResponse {
            recovery_codes: convert::recovery_codes(codes),
        }))
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> Result<Response<pb::RecoveryCodesResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let r = request.into_inner();
        let (password, code) = password_and_code(r.password, r.code)?;
        let codes = self
            .state
            .users
            .regenerate_recovery_codes(&actor, &password, &code)
            .await
            .or_status()?;
        Ok(Response::new(pb::RecoveryCodesResponse {
            recovery_codes: convert::recovery_codes(codes),
        }))
    }

    async fn disable_second_factor(
        &self,
        request: Request<pb::DisableSecondFactorRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        let actor = caller(&self.state.auth, &request, &self.trusted_proxies).await?;
        let r = request.into_inner();
        let (password, code) = password_and_code(r.password, r.code)?;
        self.state
            .users
            .disable_second_factor(&actor, &password, &code)
            .await
            .or_status()?;
        Ok(Response::new(pb::EmptyResponse {}))
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

    fn fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt as _;
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn second_steps_need_a_challenge_and_a_code_of_sane_sizes() {
        let empty = second_step(pb::CompleteSignInRequest::default()).unwrap_err();
        assert_eq!(empty.code(), tonic::Code::InvalidArgument);
        assert_eq!(fields(&empty), ["challenge", "code"]);
        let long = second_step(pb::CompleteSignInRequest {
            challenge: "c".repeat(MAX_TOKEN_LEN + 1),
            code: "1".repeat(MAX_CODE_LEN + 1),
            device_token: "d".repeat(MAX_TOKEN_LEN + 1),
            trust_device: true,
        })
        .unwrap_err();
        assert_eq!(fields(&long), ["challenge", "code", "device_token"]);
        let step = second_step(pb::CompleteSignInRequest {
            challenge: "c".repeat(MAX_TOKEN_LEN),
            code: "123 456".into(),
            device_token: String::new(),
            trust_device: true,
        })
        .unwrap();
        assert_eq!(step.code.expose_secret(), "123 456");
        assert!(step.device_token.is_none() && step.trust_device);
    }

    #[test]
    fn a_password_and_a_code_are_both_required_and_bounded() {
        let empty = password_and_code(String::new(), " ".to_owned()).unwrap_err();
        assert_eq!(empty.code(), tonic::Code::InvalidArgument);
        assert_eq!(fields(&empty), ["password", "code"]);
        let old_client = password_and_code("a password".to_owned(), String::new()).unwrap_err();
        assert_eq!(fields(&old_client), ["code"]);
        let long = password_and_code("p".to_owned(), "1".repeat(MAX_CODE_LEN + 1)).unwrap_err();
        assert_eq!(fields(&long), ["code"]);
        assert!(password_and_code("p".to_owned(), "123456".to_owned()).is_ok());
    }

    #[test]
    fn passwords_to_recheck_are_required_and_bounded() {
        let mut errors = ValidationErrors::new();
        password("password", " ", &mut errors);
        password(
            "password",
            &"p".repeat(PasswordPolicy::MAX_LENGTH + 1),
            &mut errors,
        );
        password(
            "password",
            &"p".repeat(PasswordPolicy::MAX_LENGTH),
            &mut errors,
        );
        let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["required", "too_long"]);
    }
}
