//! A minimal cookie-keeping HTTP client over a real socket. It does not follow redirects, so
//! tests see every 303 and its `Location`.

use std::collections::BTreeMap;

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Reply;

/// A browser stand-in: keeps cookies, sends forms.
pub(crate) struct Agent {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Cookies by name.
    pub(crate) cookies: BTreeMap<String, String>,
    /// Raw `Set-Cookie` headers of the last response.
    pub(crate) set_cookies: Vec<String>,
    /// The `User-Agent` to send.
    pub(crate) user_agent: String,
}

impl Agent {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub(crate) fn new(base: &str) -> Self {
        Self::with_connector(base, HttpConnector::new())
    }

    /// A client whose connections leave from `source` (any 127.x.y.z is local on Linux), so
    /// the server sees another client address.
    pub(crate) fn from_address(base: &str, source: std::net::IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(source));
        Self::with_connector(base, connector)
    }

    fn with_connector(base: &str, connector: HttpConnector) -> Self {
        Self {
            base: base.to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
            user_agent: "test-agent".to_owned(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> Reply {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::USER_AGENT, &self.user_agent);
        if !cookie.is_empty() {
            builder = builder.header(header::COOKIE, cookie);
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(form))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .client
            .request(builder.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        self.set_cookies = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for raw in &self.set_cookies {
            let (pair, attributes) = raw.split_once(';').unwrap_or((raw, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let removed = attributes.contains("Max-Age=0") || value.is_empty();
            if removed {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Any method on a path, without a body.
    pub(crate) async fn call(&mut self, method: Method, path: &str) -> Reply {
        self.send(method, path, None).await
    }

    /// GET a path.
    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// POST a form; the CSRF token from the cookie is added unless the fields have one.
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all: Vec<(&str, String)> =
            fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        if !fields.iter().any(|(k, _)| *k == "csrf_token") {
            all.push(("csrf_token", self.csrf()));
        }
        let form = serde_urlencoded::to_string(&all).unwrap();
        self.send(Method::POST, path, Some(form)).await
    }

    /// The CSRF token of this client's forms, as the pages put it in every form: bound to the
    /// session cookie when signed in, else to the anonymous `csrf` cookie.
    pub(crate) fn csrf(&self) -> String {
        let bound_to = self.session().or_else(|| {
            self.cookies
                .iter()
                .find(|(k, _)| k.ends_with("csrf"))
                .map(|(_, v)| v.clone())
        });
        bound_to.map(|secret| csrf_of(&secret)).unwrap_or_default()
    }

    /// The session cookie's value, if signed in.
    pub(crate) fn session(&self) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k.ends_with("session"))
            .map(|(_, v)| v.clone())
    }
}

/// The `Location` of a redirect.
pub(crate) fn location(reply: &Reply) -> String {
    reply.headers[header::LOCATION].to_str().unwrap().to_owned()
}

/// The CSRF token bound to `secret` (HMAC-SHA256, base64url), as the pages compute it.
pub(crate) fn csrf_of(secret: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"user-management csrf v1");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}
