//! OpenAPI schemas of the values the core validates, built from the core's own constants
//! (`Username::MAX_LEN`, `PasswordPolicy::MAX_LENGTH`, `UserQuery::MAX_LIMIT`, ...), so the
//! document cannot drift from the rules the server enforces.
//!
//! Strings are described in their canonical form: the server also accepts surrounding white
//! space (it trims usernames, emails and display names) and any letter case.

use std::borrow::Cow;
use user_core::domain::{
    AuditKind, AuditOutcome, AuditQuery, DisplayName, Email, PasswordPolicy, RecoveryCode, Role,
    SessionKind, UserQuery, UserStatus, Username,
};

use utoipa::openapi::schema::{
    AdditionalProperties, Array, ArrayBuilder, KnownFormat, Object, ObjectBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema as _, ToSchema as _};

/// The characters of a username, first one apart ([`Username::parse`]).
pub(crate) const USERNAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";

/// No control character (Unicode category Cc, what `char::is_control` refuses), as in a
/// display name ([`DisplayName::parse`]).
pub(crate) const NO_CONTROL_PATTERN: &str = "^[^\\x00-\\x1F\\x7F-\\x9F]*$";

fn string(nullable: bool) -> ObjectBuilder {
    let ty = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(ty)
}

fn format(known: KnownFormat) -> Option<SchemaFormat> {
    Some(SchemaFormat::KnownFormat(known))
}

fn username_of(nullable: bool) -> Object {
    string(nullable)
        .min_length(Some(Username::MIN_LEN))
        .max_length(Some(Username::MAX_LEN))
        .pattern(Some(USERNAME_PATTERN))
        .description(Some(format!(
            "{}-{} letters a-z, digits, `_`, `.` or `-`, starting with a letter or a digit; \
             case-insensitive (stored in lowercase).",
            Username::MIN_LEN,
            Username::MAX_LEN
        )))
        .build()
}

/// A username.
pub(crate) fn username() -> Object {
    username_of(false)
}

/// A username, or `null` to leave it unchanged.
pub(crate) fn username_or_null() -> Object {
    username_of(true)
}

fn email_of(nullable: bool) -> Object {
    string(nullable)
        .format(format(KnownFormat::IdnEmail))
        .max_length(Some(Email::MAX_LEN))
        .description(Some(format!(
            "An email address (`name@example.com`, a domain of two labels or more, no display \
             name or IP literal), at most {} bytes; case-insensitive (stored in lowercase).",
            Email::MAX_LEN
        )))
        .build()
}

/// An email address.
pub(crate) fn email() -> Object {
    email_of(false)
}

/// An email address, or `null` to leave it unchanged.
pub(crate) fn email_or_null() -> Object {
    email_of(true)
}

/// An optional display name; blank means none.
pub(crate) fn display_name() -> Object {
    string(true)
        .max_length(Some(DisplayName::MAX_LEN))
        .pattern(Some(NO_CONTROL_PATTERN))
        .description(Some(format!(
            "A name to show, at most {} characters, no control characters or line breaks; \
             empty to have none.",
            DisplayName::MAX_LEN
        )))
        .build()
}

/// A new password under the default [`PasswordPolicy`]; [`super::ApiDoc::for_policy`]
/// puts in a deployment's own minimum.
pub(crate) fn new_password() -> Object {
    new_password_for(&PasswordPolicy::default())
}

pub(crate) fn new_password_for(policy: &PasswordPolicy) -> Object {
    string(false)
        .format(format(KnownFormat::Password))
        .min_length(Some(policy.min_length()))
        .max_length(Some(PasswordPolicy::MAX_LENGTH))
        .description(Some(format!(
            "{} to {} characters, any Unicode, kept as typed; not among common passwords, \
             and not containing the username or the email's local part.",
            policy.min_length(),
            PasswordPolicy::MAX_LENGTH
        )))
        .build()
}

/// A password to check: any string (a wrong one is refused with 401, never 422).
pub(crate) fn password() -> Object {
    string(false).format(format(KnownFormat::Password)).build()
}

/// A secret token.
pub(crate) fn token() -> Object {
    string(false).build()
}

/// A secret token, or `null`.
pub(crate) fn token_or_null() -> Object {
    string(true).build()
}

/// A sign-in challenge, as the 202 answer of `POST /api/v1/auth/login` gave it.
pub(crate) fn challenge() -> Object {
    string(false)
        .min_length(Some(1))
        .description(Some(
            "The `challenge` of the sign-in's 202 answer (an unknown, used or expired one is \
             refused with 401).",
        ))
        .build()
}

/// A code typed at a second step: only checked, so any non-empty string (a wrong or
/// malformed one is refused with 401, never 422).
pub(crate) fn code() -> Object {
    string(false)
        .format(format(KnownFormat::Password))
        .min_length(Some(1))
        .description(Some(
            "Six digits from the authenticator app, or a recovery code \
             (`xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`; case, spaces and dashes do not matter).",
        ))
        .build()
}

/// The challenge of a 202 answer.
pub(crate) fn challenge_issued() -> Object {
    string(false)
        .description(Some(
            "The single-use handle on this sign-in, to send back with the second step. It is \
             not an access token and opens nothing else.",
        ))
        .build()
}

/// `trust_device`: a flag, `null` or absent for `false`.
pub(crate) fn trust_device() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Boolean, Type::Null]))
        .description(Some(
            "Trust this client: its next sign-ins with the `device_token` of the answer skip \
             the second step (30 days by default). Absent or `null`: `false`.",
        ))
        .build()
}

/// The characters of a TOTP secret: base32 (RFC 4648) without padding.
pub(crate) const TOTP_SECRET_PATTERN: &str = "^[A-Z2-7]+$";

/// A TOTP secret as an app takes it typed in.
pub(crate) fn totp_secret() -> Object {
    string(false)
        .pattern(Some(TOTP_SECRET_PATTERN))
        .description(Some(
            "Base32 without padding, 160 bits; TOTP with SHA-1, 6 digits and 30-second steps.",
        ))
        .build()
}

/// The start of every `otpauth_uri`.
pub(crate) const OTPAUTH_PATTERN: &str = "^otpauth://totp/";

/// The URI an authenticator app reads from a QR code.
pub(crate) fn otpauth_uri() -> Object {
    string(false)
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .pattern(Some(OTPAUTH_PATTERN))
        .description(Some(
            "`otpauth://totp/Issuer:account?secret=...&issuer=...`, what a QR code carries.",
        ))
        .build()
}

/// A recovery code as issued: 24 Crockford base-32 symbols in lowercase (120 bits), in six
/// groups of four.
pub(crate) const RECOVERY_CODE_PATTERN: &str = "^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}$";

/// The recovery codes of one issue.
pub(crate) fn recovery_codes() -> Array {
    let code = string(false)
        .pattern(Some(RECOVERY_CODE_PATTERN))
        .format(format(KnownFormat::Password));
    ArrayBuilder::new()
        .items(code)
        .min_items(Some(RecoveryCode::COUNT))
        .max_items(Some(RecoveryCode::COUNT))
        .description(Some(format!(
            "{} codes, shown this once; each signs in once in place of a code from the app.",
            RecoveryCode::COUNT
        )))
        .build()
}

/// When a second factor was enrolled, or `null`.
pub(crate) fn enabled_at() -> Object {
    string(true)
        .format(format(KnownFormat::DateTime))
        .description(Some(
            "When the authenticator app was enrolled (RFC 3339), or `null` when there is none.",
        ))
        .build()
}

/// An id.
pub(crate) fn uuid() -> Object {
    string(false).format(format(KnownFormat::Uuid)).build()
}

/// An id, or `null`.
pub(crate) fn uuid_or_null() -> Object {
    string(true).format(format(KnownFormat::Uuid)).build()
}

/// A time (RFC 3339).
pub(crate) fn date_time() -> Object {
    string(false).format(format(KnownFormat::DateTime)).build()
}

/// The `search` query parameter.
pub(crate) fn search() -> Object {
    string(false)
        .max_length(Some(UserQuery::MAX_SEARCH_LEN))
        .description(Some(format!(
            "Case-insensitive: {} characters or more match anywhere in the username, the email \
             or the display name; fewer match the start of the username. Every character is \
             literal. At most {} characters.",
            UserQuery::SUBSTRING_MIN_CHARS,
            UserQuery::MAX_SEARCH_LEN
        )))
        .build()
}

/// The `limit` query parameter.
pub(crate) fn limit() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(UserQuery::MAX_LIMIT))
        .default(Some(UserQuery::DEFAULT_LIMIT.into()))
        .description(Some(format!(
            "Page size, 1 to {} (default {}).",
            UserQuery::MAX_LIMIT,
            UserQuery::DEFAULT_LIMIT
        )))
        .build()
}

/// The `page_size` query parameter of the audit log.
pub(crate) fn audit_page_size() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(AuditQuery::MAX_LIMIT))
        .default(Some(AuditQuery::DEFAULT_LIMIT.into()))
        .description(Some(format!(
            "Page size, 1 to {} (default {}).",
            AuditQuery::MAX_LIMIT,
            AuditQuery::DEFAULT_LIMIT
        )))
        .build()
}

/// The `limit` query parameter of `/me/events`.
pub(crate) fn recent_events_limit() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(AuditQuery::MAX_LIMIT))
        .default(Some(AuditQuery::RECENT_DEFAULT.into()))
        .description(Some(format!(
            "How many events, 1 to {} (default {}).",
            AuditQuery::MAX_LIMIT,
            AuditQuery::RECENT_DEFAULT
        )))
        .build()
}

fn one_of(values: &[&str], description: &str) -> Object {
    string(false)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

/// The `role` query parameter.
pub(crate) fn role() -> Object {
    one_of(
        &[Role::User.as_str(), Role::Admin.as_str()],
        "Only users with this role.",
    )
}

/// The `status` query parameter.
pub(crate) fn status() -> Object {
    one_of(
        &[UserStatus::Active.as_str(), UserStatus::Disabled.as_str()],
        "Only users with this status.",
    )
}

/// A session's kind.
pub(crate) fn session_kind() -> Object {
    one_of(
        &[SessionKind::Browser.as_str(), SessionKind::Token.as_str()],
        "`browser` (a session cookie of the pages) or `token` (an API or gRPC client).",
    )
}

fn audit_kinds() -> Vec<&'static str> {
    AuditKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// An audit event's kind.
pub(crate) fn audit_kind() -> Object {
    let names: Vec<String> = audit_kinds().iter().map(|k| format!("`{k}`")).collect();
    one_of(
        &audit_kinds(),
        &format!("What happened: one of {}.", names.join(", ")),
    )
}

/// The `kind` query parameter of the audit log.
pub(crate) fn audit_kind_filter() -> Object {
    one_of(&audit_kinds(), "Only events of this kind.")
}

fn audit_outcomes() -> [&'static str; 2] {
    [
        AuditOutcome::Success.as_str(),
        AuditOutcome::Failure.as_str(),
    ]
}

/// An audit event's outcome.
pub(crate) fn audit_outcome() -> Object {
    one_of(
        &audit_outcomes(),
        "`success` (it was done) or `failure` (it was refused).",
    )
}

/// The `outcome` query parameter of the audit log.
pub(crate) fn audit_outcome_filter() -> Object {
    one_of(&audit_outcomes(), "Only events with this outcome.")
}

/// A user id as a filter of the audit log.
pub(crate) fn audit_user(description: &'static str) -> Object {
    string(false)
        .format(format(KnownFormat::Uuid))
        .description(Some(description))
        .build()
}

/// The `subject` query parameter of the audit log.
pub(crate) fn audit_subject() -> Object {
    audit_user("A user id: only events concerning that account.")
}

/// The `actor` query parameter of the audit log.
pub(crate) fn audit_actor() -> Object {
    audit_user("A user id: only events done by that user.")
}

/// The `token_type` of a token answer.
pub(crate) fn token_type() -> Object {
    one_of(&["Bearer"], "Always `Bearer`.")
}

/// The `status` of a health check.
pub(crate) fn health() -> Object {
    one_of(
        &["ok", "ready"],
        "`ok` from `/healthz`, `ready` from `/readyz`.",
    )
}

/// The JWKS document of `/.well-known/jwks.json` ([`user_core::auth::Jwks`], which cannot
/// derive a schema: the core does not depend on utoipa).
pub(crate) struct JwksSchema;

impl utoipa::PartialSchema for JwksSchema {
    fn schema() -> RefOr<Schema> {
        let keys = ArrayBuilder::new()
            .items(Ref::from_schema_name(JwkSchema::name()))
            .description(Some("The keys, the signing key's first."));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("keys", keys)
            .required("keys")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .description(Some(
                "The public keys that verify access tokens (RFC 7517). Only Ed25519 keys \
                 appear; HS256 secrets are never published, so the set may be empty.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for JwksSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Jwks")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((JwkSchema::name().into_owned(), JwkSchema::schema()));
    }
}

/// One Ed25519 public key ([`user_core::auth::Jwk`], RFC 8037).
pub(crate) struct JwkSchema;

/// A base64url encoding of 32 bytes, without padding.
pub(crate) const ED25519_X_PATTERN: &str = "^[A-Za-z0-9_-]{43}$";

impl utoipa::PartialSchema for JwkSchema {
    fn schema() -> RefOr<Schema> {
        let fields = [
            ("use", one_of(&["sig"], "Always `sig`.")),
            ("alg", one_of(&["EdDSA"], "Always `EdDSA`.")),
            ("kty", one_of(&["OKP"], "Always `OKP`.")),
            ("crv", one_of(&["Ed25519"], "Always `Ed25519`.")),
            (
                "kid",
                string(false)
                    .description(Some(
                        "The key id that tokens signed by this key carry in their header.",
                    ))
                    .build(),
            ),
            (
                "x",
                string(false)
                    .pattern(Some(ED25519_X_PATTERN))
                    .description(Some("The 32-byte public key, base64url without padding."))
                    .build(),
            ),
        ];
        fields
            .into_iter()
            .fold(
                ObjectBuilder::new().schema_type(Type::Object),
                |object, (name, field)| object.property(name, field).required(name),
            )
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .into()
    }
}

impl utoipa::ToSchema for JwkSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Jwk")
    }
}
