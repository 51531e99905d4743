//! The error answers routes share, as sets of OpenAPI responses. Each route lists the sets
//! that apply to it (what it reads, whom it admits), then its own answers, so the document
//! names every status a client can meet and says the same thing for the same failure.
//!
//! Every body is an [`crate::ErrorBody`], except 408's, which is empty.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

type Responses = BTreeMap<String, RefOr<Response>>;

fn error(description: &str) -> ResponseBuilder {
    let body = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
}

fn header(ty: Type, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(ty).build()))
        .description(Some(description))
        .build()
}

fn retry_after() -> Header {
    header(Type::Integer, "Seconds to wait before trying again.")
}

fn set(entries: impl IntoIterator<Item = (u16, ResponseBuilder)>) -> Responses {
    entries
        .into_iter()
        .map(|(status, r)| (status.to_string(), RefOr::T(r.build())))
        .collect()
}

/// 401 for a missing, malformed, expired or revoked access token.
fn unauthenticated() -> ResponseBuilder {
    error("`unauthenticated`: no valid access token (missing, malformed, expired or revoked)")
        .header(
            "WWW-Authenticate",
            header(Type::String, "`Bearer realm=\"user-management\"`"),
        )
}

/// 408 with an empty body, from the timeout layer in front of every route.
fn timed_out() -> (u16, ResponseBuilder) {
    (
        408,
        ResponseBuilder::new().description(
            "The request ran longer than the server's timeout (30 s by default): a body sent \
             too slowly, or a store or hasher that is too slow. The body is empty.",
        ),
    )
}

/// The answer of every route to a method its path does not have.
pub(crate) struct OtherMethod;

impl IntoResponses for OtherMethod {
    fn responses() -> Responses {
        set([(
            405,
            error("`method_not_allowed`: the path exists but not with this method")
                .header("Allow", header(Type::String, "The methods the path has.")),
        )])
    }
}

/// The answer of a route that waits for something (a body, the store, a check) past the
/// server's timeout. The routes that answer at once (JWKS, `/healthz`) never time out.
pub(crate) struct Timeout;

impl IntoResponses for Timeout {
    fn responses() -> Responses {
        set([timed_out()])
    }
}

/// The answers of a route that reads a JSON body through [`crate::ApiJson`], and
/// [`Timeout`]'s.
pub(crate) struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> Responses {
        set([
            timed_out(),
            (
                400,
                error("`malformed_request`: the body is not valid JSON"),
            ),
            (
                413,
                error(
                    "`payload_too_large`: the body is above the server's limit (64 KiB by default)",
                ),
            ),
            (
                415,
                error(
                    "`unsupported_media_type`: the body is not sent as `Content-Type: application/json`",
                ),
            ),
            (
                422,
                error(
                    "`validation_failed`: the body does not match the schema (a missing or \
                       mistyped field, an unknown field), or a value (in the body or the path) \
                       breaks a rule (`fields` lists every problem)",
                ),
            ),
        ])
    }
}

/// The answers of a route that reads or writes the store, and [`Timeout`]'s.
pub(crate) struct Store;

impl IntoResponses for Store {
    fn responses() -> Responses {
        set([
            timed_out(),
            (
                500,
                error("`internal`: an unexpected failure, logged by the server"),
            ),
            (
                503,
                error("`unavailable`: the database does not answer; try again later"),
            ),
        ])
    }
}

/// The answers of a route that hashes or checks a password: the hasher's queue can be full.
/// Replaces [`Store`]'s 503, so list it after.
pub(crate) struct Hashing;

impl IntoResponses for Hashing {
    fn responses() -> Responses {
        set([(
            503,
            error(
                "`overloaded`: too many passwords are being hashed (see `Retry-After`), or \
                   `unavailable`: the database does not answer",
            )
            .header("Retry-After", retry_after()),
        )])
    }
}

/// The answers of a route for any signed-in caller (bearer token): [`Store`]'s, and 401.
pub(crate) struct SignedIn;

impl IntoResponses for SignedIn {
    fn responses() -> Responses {
        let mut responses = Store::responses();
        responses.extend(set([(401, unauthenticated())]));
        responses
    }
}

/// The answers of a route for admins: [`SignedIn`]'s, and 403.
pub(crate) struct AdminOnly;

impl IntoResponses for AdminOnly {
    fn responses() -> Responses {
        let mut responses = SignedIn::responses();
        responses.extend(set([(
            403,
            error("`forbidden`: the caller is not an admin"),
        )]));
        responses
    }
}
