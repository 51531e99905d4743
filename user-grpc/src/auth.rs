//! Bearer-token authentication: the helper every RPC of ours starts with, and a tower layer
//! that host applications put in front of their own gRPC services.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Request, Status};
use user_core::auth::{AuthService, bearer_token};
use user_core::domain::{Actor, ClientInfo, TrustedProxies, User};
use user_core::error::AuthError;

use crate::status::ToStatus;

fn token(metadata: &MetadataMap) -> Option<&str> {
    metadata
        .get("authorization")?
        .to_str()
        .ok()
        .and_then(bearer_token)
}

/// Authenticates the access token in a request's metadata.
///
/// # Errors
/// `UNAUTHENTICATED` with one generic message when the token is missing, malformed, expired
/// or revoked, or its user is disabled.
pub async fn authenticate<T>(auth: &AuthService, request: &Request<T>) -> Result<Actor, Status> {
    let token = token(request.metadata()).ok_or(AuthError::Unauthenticated.to_status())?;
    auth.authenticate(token).await.map_err(ToStatus::to_status)
}

/// [`authenticate`], with the client's address and user agent on the actor (see
/// [`client_info`]) for the audit log.
pub(crate) async fn caller<T>(
    auth: &AuthService,
    request: &Request<T>,
    proxies: &TrustedProxies,
) -> Result<Actor, Status> {
    let actor = authenticate(auth, request).await?;
    Ok(actor.with_client(client_info(request, proxies)))
}

/// [`caller`], also returning the caller's user record as read with their session (one
/// store read), for requests about the caller's own account.
pub(crate) async fn caller_with_user<T>(
    auth: &AuthService,
    request: &Request<T>,
    proxies: &TrustedProxies,
) -> Result<(Actor, User), Status> {
    let token = token(request.metadata()).ok_or(AuthError::Unauthenticated.to_status())?;
    let (actor, user) = auth
        .authenticate_with_user(token)
        .await
        .map_err(ToStatus::to_status)?;
    Ok((actor.with_client(client_info(request, proxies)), user))
}

/// The client's user agent and address, recorded with a new session; rate limits count on
/// the address. It is the TCP peer's, or, when the peer is one of `proxies`, the one its
/// forwarding metadata (`x-forwarded-for` by default) gives.
pub(crate) fn client_info<T>(request: &Request<T>, proxies: &TrustedProxies) -> ClientInfo {
    let metadata = request.metadata();
    let agent = metadata.get("user-agent").and_then(|v| v.to_str().ok());
    let forwarded: Vec<&str> = metadata
        .get_all(proxies.header().name())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = request.remote_addr().map(|a| {
        proxies
            .client_addr(a.ip(), forwarded.into_iter())
            .to_string()
    });
    ClientInfo::new(agent, ip.as_deref())
}

/// A tower layer that lets only requests with a valid access token through, for a host
/// application's own gRPC services. The authenticated [`Actor`] is put in the request
/// extensions, where a tonic handler finds it with `request.extensions().get::<Actor>()`.
///
/// ```no_run
/// # fn wire<S>(auth: std::sync::Arc<user_core::auth::AuthService>, my_service: S) -> user_grpc::RequireAuth<S> {
/// use tower::Layer as _;
/// let protected = user_grpc::RequireAuthLayer::new(auth).layer(my_service);
/// # protected }
/// ```
#[derive(Clone)]
pub struct RequireAuthLayer {
    auth: Arc<AuthService>,
}

impl RequireAuthLayer {
    /// A layer checking tokens with `auth`.
    pub fn new(auth: Arc<AuthService>) -> Self {
        Self { auth }
    }
}

impl std::fmt::Debug for RequireAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuthLayer").finish_non_exhaustive()
    }
}

impl<S> tower::Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> RequireAuth<S> {
        RequireAuth {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// The service [`RequireAuthLayer`] makes: answers `UNAUTHENTICATED` itself, or calls the
/// inner service with the [`Actor`] in the request extensions.
#[derive(Clone)]
pub struct RequireAuth<S> {
    inner: S,
    auth: Arc<AuthService>,
}

impl<S> std::fmt::Debug for RequireAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuth").finish_non_exhaustive()
    }
}

impl<S: NamedService> NamedService for RequireAuth<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for RequireAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is not ready; swap so the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            let token = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .map(str::to_owned);
            let checked = match token {
                Some(token) => auth.authenticate(&token).await,
                None => Err(AuthError::Unauthenticated),
            };
            match checked {
                Ok(actor) => {
                    request.extensions_mut().insert(actor);
                    inner.call(request).await
                }
                Err(e) => Ok(e.to_status().into_http()),
            }
        })
    }
}
