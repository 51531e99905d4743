//! The load generator's clients: gRPC through tonic channels, HTTP through hyper-util's
//! client, each making one call at a time (closed loop).
//!
//! A [`Wire`] is one connection, or (HTTP/1.1) a pool that keeps one: callers given clones of
//! one wire share its connection; callers given a wire each have one connection each.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use user_grpc::pb;
use user_grpc::pb::admin_service_client::AdminServiceClient;
use user_grpc::pb::user_service_client::UserServiceClient;

/// The password of every account the run makes (a dataset's accounts have their own).
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The page size of the admin scenarios: the API's default.
const ADMIN_PAGE: u32 = 20;

/// The searches of the admin-search scenario, taken in turn: text (empty: none), a role
/// filter, a status filter. The texts are of the `dataset` example's names (`first.last42`,
/// `First Last`, a few domains), from a few matches to a fifth of all users, and of 1–2
/// characters (prefixes).
pub(crate) const SEARCHES: &[(&str, Option<&str>, Option<&str>)] = &[
    ("smith12", None, None),
    ("garcia", None, None),
    ("maria.n", None, None),
    ("example.org", None, None),
    ("kowalski7", None, Some("active")),
    ("zo", None, None),
    ("ol", None, None),
    ("Tanaka", None, None),
    ("", Some("admin"), None),
    ("", None, Some("disabled")),
    ("smith", Some("admin"), None),
    ("nguyen", None, Some("disabled")),
];

/// How calls travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Grpc => "gRPC",
            Self::Http => "HTTP",
        }
    }
}

/// What a caller does, over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sign in to its own account, presenting the device token of its last sign-in.
    SignIn,
    /// Register a new account.
    Register,
    /// Exchange its refresh token for a new pair.
    Refresh,
    /// Read its own profile with its access token: `GetUser` / `GET /api/v1/me`.
    Read,
    /// The trivial handler: `grpc.health.v1.Health/Check` / `GET /healthz`.
    Health,
    /// An admin's search of the user list, the next of [`SEARCHES`].
    AdminSearch,
    /// An admin's walk through the user list, a page of 20 at a time from the last cursor
    /// (from the start again after the last page).
    AdminPage,
}

impl Op {
    /// The call, as the transport names it.
    pub(crate) fn call_name(self, transport: Transport) -> &'static str {
        match (transport, self) {
            (Transport::Grpc, Self::SignIn) => "LoginUser",
            (Transport::Grpc, Self::Register) => "RegisterUser",
            (Transport::Grpc, Self::Refresh) => "RefreshToken",
            (Transport::Grpc, Self::Read) => "GetUser",
            (Transport::Grpc, Self::Health) => "Health/Check",
            (Transport::Grpc, Self::AdminSearch) => "ListUsers (search)",
            (Transport::Grpc, Self::AdminPage) => "ListUsers (next page)",
            (Transport::Http, Self::SignIn) => "POST /api/v1/auth/login",
            (Transport::Http, Self::Register) => "POST /api/v1/auth/register",
            (Transport::Http, Self::Refresh) => "POST /api/v1/auth/refresh",
            (Transport::Http, Self::Read) => "GET /api/v1/me",
            (Transport::Http, Self::Health) => "GET /healthz",
            (Transport::Http, Self::AdminSearch) => "GET /api/v1/admin/users?search=",
            (Transport::Http, Self::AdminPage) => "GET /api/v1/admin/users?cursor=",
        }
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Turned away because password hashing is saturated (`RESOURCE_EXHAUSTED` without a
    /// lockout, or 503 `overloaded`): expected under a flood, retried at once.
    Shed,
    /// Anything else: an error of the run.
    Other(String),
}

/// A session's tokens.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
    /// After a sign-in: the device token to present at the next one.
    pub(crate) device: Option<String>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A connection to the server under test.
#[derive(Clone)]
pub(crate) enum Wire {
    Grpc {
        users: UserServiceClient<Channel>,
        admin: AdminServiceClient<Channel>,
        health: HealthClient<Channel>,
    },
    Http {
        client: HttpClient,
        /// `http://ADDR`
        base: String,
    },
}

impl Wire {
    /// One HTTP/2 connection (tonic's channel), connected now.
    pub(crate) async fn grpc(addr: SocketAddr) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(Self::Grpc {
            users: UserServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        })
    }

    /// HTTP/1.1 with keep-alive, keeping at most one idle connection: a closed-loop caller
    /// has one connection. Connects at the first call.
    pub(crate) fn http1(addr: SocketAddr) -> Self {
        let mut client = Client::builder(TokioExecutor::new());
        client.pool_max_idle_per_host(1);
        Self::http(addr, &client)
    }

    /// HTTP/2 with prior knowledge (h2c): the requests of every caller sharing this wire are
    /// streams of one connection. Connects at the first call.
    pub(crate) fn h2c(addr: SocketAddr) -> Self {
        let mut client = Client::builder(TokioExecutor::new());
        client.http2_only(true);
        Self::http(addr, &client)
    }

    fn http(addr: SocketAddr, builder: &hyper_util::client::legacy::Builder) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self::Http {
            client: builder.build(connector),
            base: format!("http://{addr}"),
        }
    }

    pub(crate) async fn sign_in(
        &mut self,
        username: &str,
        password: &str,
        device: Option<&str>,
    ) -> Result<Tokens, Failure> {
        match self {
            Self::Grpc { users, .. } => {
                let reply = users
                    .login_user(pb::LoginUserRequest {
                        username: username.to_owned(),
                        password: password.to_owned(),
                        device_token: device.unwrap_or_default().to_owned(),
                        ..Default::default()
                    })
                    .await
                    .map_err(grpc_failure)?
                    .into_inner();
                Ok(Tokens {
                    access: reply.token,
                    refresh: reply.refresh_token,
                    device: Some(reply.device_token).filter(|d| !d.is_empty()),
                })
            }
            Self::Http { client, base } => {
                let body = serde_json::json!({
                    "identifier": username,
                    "password": password,
                    "device_token": device,
                });
                let url = format!("{base}/api/v1/auth/login");
                let reply = http(client, Method::POST, &url, None, Some(body)).await?;
                tokens(&reply)
            }
        }
    }

    pub(crate) async fn register(&mut self, username: &str) -> Result<(), Failure> {
        let email = format!("{username}@example.com");
        match self {
            Self::Grpc { users, .. } => {
                users
                    .register_user(pb::RegisterUserRequest {
                        username: username.to_owned(),
                        email,
                        password: PASSWORD.to_owned(),
                        display_name: String::new(),
                    })
                    .await
                    .map_err(grpc_failure)?;
                Ok(())
            }
            Self::Http { client, base } => {
                let body = serde_json::json!({
                    "username": username,
                    "email": email,
                    "password": PASSWORD,
                });
                let url = format!("{base}/api/v1/auth/register");
                http(client, Method::POST, &url, None, Some(body))
                    .await
                    .map(drop)
            }
        }
    }

    pub(crate) async fn refresh(&mut self, refresh_token: &str) -> Result<Tokens, Failure> {
        match self {
            Self::Grpc { users, .. } => {
                let reply = users
                    .refresh_token(pb::RefreshTokenRequest {
                        refresh_token: refresh_token.to_owned(),
                    })
                    .await
                    .map_err(grpc_failure)?
                    .into_inner();
                Ok(Tokens {
                    access: reply.token,
                    refresh: reply.refresh_token,
                    device: None,
                })
            }
            Self::Http { client, base } => {
                let body = serde_json::json!({ "refresh_token": refresh_token });
                let url = format!("{base}/api/v1/auth/refresh");
                let reply = http(client, Method::POST, &url, None, Some(body)).await?;
                tokens(&reply)
            }
        }
    }

    /// The caller's own profile; `bearer` is `Bearer TOKEN`.
    pub(crate) async fn read(&mut self, bearer: &str) -> Result<(), Failure> {
        match self {
            Self::Grpc { users, .. } => {
                let request = with_bearer(pb::GetUserRequest::default(), bearer)?;
                users.get_user(request).await.map_err(grpc_failure)?;
                Ok(())
            }
            Self::Http { client, base } => {
                let url = format!("{base}/api/v1/me");
                http(client, Method::GET, &url, Some(bearer), None)
                    .await
                    .map(drop)
            }
        }
    }

    /// One search of the user list as an admin: `search` is one of [`SEARCHES`].
    pub(crate) async fn admin_search(
        &mut self,
        bearer: &str,
        (text, role, status): (&str, Option<&str>, Option<&str>),
    ) -> Result<(), Failure> {
        match self {
            Self::Grpc { admin, .. } => {
                let role = match role {
                    Some("admin") => pb::Role::Admin,
                    Some(_) => pb::Role::User,
                    None => pb::Role::Unspecified,
                };
                let status = match status {
                    Some("disabled") => pb::Status::Disabled,
                    Some(_) => pb::Status::Active,
                    None => pb::Status::Unspecified,
                };
                let request = pb::ListUsersRequest {
                    page_size: ADMIN_PAGE,
                    search: text.to_owned(),
                    role: role.into(),
                    status: status.into(),
                    ..Default::default()
                };
                admin
                    .list_users(with_bearer(request, bearer)?)
                    .await
                    .map_err(grpc_failure)?;
                Ok(())
            }
            Self::Http { client, base } => {
                let limit = ADMIN_PAGE.to_string();
                let mut pairs = vec![("limit", limit.as_str())];
                let filters = [("search", Some(text)), ("role", role), ("status", status)];
                pairs.extend(
                    filters
                        .into_iter()
                        .filter_map(|(name, value)| Some((name, value.filter(|v| !v.is_empty())?))),
                );
                let url = users_url(base, &pairs)?;
                http(client, Method::GET, &url, Some(bearer), None)
                    .await
                    .map(drop)
            }
        }
    }

    /// The page of the user list after `cursor` (from the start without one), as an admin;
    /// the cursor of the next page, if any.
    pub(crate) async fn admin_page(
        &mut self,
        bearer: &str,
        cursor: Option<&str>,
    ) -> Result<Option<String>, Failure> {
        match self {
            Self::Grpc { admin, .. } => {
                let request = pb::ListUsersRequest {
                    page_size: ADMIN_PAGE,
                    page_token: cursor.unwrap_or_default().to_owned(),
                    ..Default::default()
                };
                let page = admin
                    .list_users(with_bearer(request, bearer)?)
                    .await
                    .map_err(grpc_failure)?
                    .into_inner();
                Ok(Some(page.next_page_token).filter(|t| !t.is_empty()))
            }
            Self::Http { client, base } => {
                let limit = ADMIN_PAGE.to_string();
                let mut pairs = vec![("limit", limit.as_str())];
                pairs.extend(cursor.map(|c| ("cursor", c)));
                let url = users_url(base, &pairs)?;
                let body = http(client, Method::GET, &url, Some(bearer), None).await?;
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| Failure::Other(format!("not a JSON page: {e}")))?;
                Ok(json["next_cursor"].as_str().map(str::to_owned))
            }
        }
    }

    pub(crate) async fn health(&mut self) -> Result<(), Failure> {
        match self {
            Self::Grpc { health, .. } => {
                let reply = health
                    .check(HealthCheckRequest::default())
                    .await
                    .map_err(grpc_failure)?
                    .into_inner();
                if reply.status == ServingStatus::Serving as i32 {
                    Ok(())
                } else {
                    Err(Failure::Other(format!("health status {}", reply.status)))
                }
            }
            Self::Http { client, base } => {
                let url = format!("{base}/healthz");
                http(client, Method::GET, &url, None, None).await.map(drop)
            }
        }
    }
}

/// A gRPC request carrying `bearer` (`Bearer TOKEN`) as its authorization.
fn with_bearer<T>(message: T, bearer: &str) -> Result<Request<T>, Failure> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(bearer)
        .map_err(|_| Failure::Other("a token that is no header value".into()))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// `/api/v1/admin/users` with `pairs` as its query string.
fn users_url(base: &str, pairs: &[(&str, &str)]) -> Result<String, Failure> {
    let query = serde_urlencoded::to_string(pairs)
        .map_err(|e| Failure::Other(format!("query string: {e}")))?;
    Ok(format!("{base}/api/v1/admin/users?{query}"))
}

/// `RESOURCE_EXHAUSTED` is shedding, unless it is a lockout ("too many attempts"): the
/// accounts of the run never fail a sign-in, so a lockout is an error of the run.
fn grpc_failure(status: Status) -> Failure {
    if status.code() == Code::ResourceExhausted && !status.message().starts_with("too many") {
        Failure::Shed
    } else {
        Failure::Other(format!("{:?}: {}", status.code(), status.message()))
    }
}

/// Sends a request and reads the whole answer; a success status returns the body, 503
/// `overloaded` is shedding, anything else a failure.
async fn http(
    client: &HttpClient,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    json: Option<serde_json::Value>,
) -> Result<Bytes, Failure> {
    let mut request = http::Request::builder().method(method).uri(url);
    if let Some(bearer) = bearer {
        request = request.header("authorization", bearer);
    }
    let body = match json {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(json.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let request = request
        .body(body)
        .map_err(|e| Failure::Other(format!("request: {e}")))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| Failure::Other(format!("connection: {e}")))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure::Other(format!("body: {e}")))?
        .to_bytes();
    if status.is_success() {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    if status == StatusCode::SERVICE_UNAVAILABLE && text.contains("\"overloaded\"") {
        return Err(Failure::Shed);
    }
    let text: String = text.chars().take(200).collect();
    Err(Failure::Other(format!("{status}: {text}")))
}

/// The tokens of a JSON sign-in or refresh answer.
fn tokens(body: &[u8]) -> Result<Tokens, Failure> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Failure::Other(format!("not JSON tokens: {e}")))?;
    let field = |name: &str| json[name].as_str().map(str::to_owned);
    match (field("access_token"), field("refresh_token")) {
        (Some(access), Some(refresh)) => Ok(Tokens {
            access,
            refresh,
            device: field("device_token"),
        }),
        _ => Err(Failure::Other("no tokens in the answer".into())),
    }
}

/// Retries `call` while it is shed (pausing a little: this is setup, not measurement), up to
/// a minute.
pub(crate) async fn until_served<T, F, Fut>(mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    for _ in 0..3000 {
        match call().await {
            Ok(value) => return Ok(value),
            Err(Failure::Shed) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(Failure::Other(e)) => anyhow::bail!(e),
        }
    }
    anyhow::bail!("still turned away as overloaded after a minute")
}

/// One closed-loop client: a wire and what it needs for its [`Op`].
pub(crate) struct Caller {
    pub(crate) op: Op,
    pub(crate) wire: Wire,
    /// SignIn: its account. Register: the prefix of the names it registers.
    pub(crate) name: String,
    /// SignIn: the account's password.
    pub(crate) password: String,
    /// Read and the admin ops: `Bearer TOKEN`.
    pub(crate) bearer: String,
    /// Refresh: the current refresh token.
    pub(crate) refresh: String,
    /// SignIn: the device token of the last sign-in.
    pub(crate) device: Option<String>,
    /// Register: names used so far. AdminSearch: searches made so far (and where in
    /// [`SEARCHES`] this caller started).
    pub(crate) calls: u64,
    /// AdminPage: the cursor of the next page.
    pub(crate) cursor: Option<String>,
}

impl Caller {
    pub(crate) fn new(op: Op, wire: Wire) -> Self {
        Self {
            op,
            wire,
            name: String::new(),
            password: String::new(),
            bearer: String::new(),
            refresh: String::new(),
            device: None,
            calls: 0,
            cursor: None,
        }
    }

    /// One call.
    pub(crate) async fn call(&mut self) -> Result<(), Failure> {
        match self.op {
            Op::SignIn => {
                let tokens = self
                    .wire
                    .sign_in(&self.name, &self.password, self.device.as_deref())
                    .await?;
                self.device = tokens.device.or(self.device.take());
                Ok(())
            }
            Op::Register => {
                self.calls += 1;
                let name = format!("{}x{}", self.name, self.calls);
                self.wire.register(&name).await
            }
            Op::Refresh => {
                let tokens = self.wire.refresh(&self.refresh).await?;
                self.refresh = tokens.refresh;
                Ok(())
            }
            Op::Read => self.wire.read(&self.bearer).await,
            Op::Health => self.wire.health().await,
            Op::AdminSearch => {
                let search = SEARCHES[usize::try_from(self.calls).unwrap_or(0) % SEARCHES.len()];
                self.calls += 1;
                self.wire.admin_search(&self.bearer, search).await
            }
            Op::AdminPage => {
                self.cursor = self
                    .wire
                    .admin_page(&self.bearer, self.cursor.as_deref())
                    .await?;
                Ok(())
            }
        }
    }
}
