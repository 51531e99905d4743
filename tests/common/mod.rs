//! What the tests that run the server example as a real process share: the build of the
//! executable, a server process that reports where it listens, and an HTTP client.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use tokio::sync::mpsc;

/// Longest wait for the server to print its addresses.
const STARTUP: Duration = Duration::from_secs(15);
/// Longest wait for one request.
pub(crate) const REQUEST: Duration = Duration::from_secs(10);

/// The client of [`client`].
pub(crate) type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// The server example as a command: run in `cwd` (so a developer's `.env` is not read),
/// without the `USERS_*` variables of the environment, logging warnings only, no stdin.
pub(crate) fn command(bin: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("USERS_") {
            command.env_remove(name);
        }
    }
    command
}

/// Builds the server example like `cargo build` would by hand, and returns the executable
/// cargo reports in its JSON messages.
pub(crate) fn build_server() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

/// The build itself: once per test binary.
fn build() -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--example",
            "server",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let out = cargo.output().expect("cannot run cargo");
    assert!(
        out.status.success(),
        "cargo build --example server failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == "server"
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "example"))
        })
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no executable for the server example")
}

/// The server process; killed (and reaped) when dropped.
pub(crate) struct Server {
    child: Child,
    /// Where the pages and the JSON API listen.
    pub(crate) http: SocketAddr,
    /// Where gRPC listens.
    pub(crate) grpc: SocketAddr,
    /// Everything it printed, for failure messages.
    output: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server on `data_dir` (also its working directory, so no `.env` of the
    /// developer's is read), both listeners on port 0, with `extra` arguments; panics with its
    /// output when it does not start.
    pub(crate) async fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> Self {
        Self::try_start(bin, data_dir, extra)
            .await
            .unwrap_or_else(|log| panic!("the server did not start:\n{log}"))
    }

    /// Like [`Server::start`], but a server that exits before printing its addresses is
    /// `Err` with everything it printed.
    pub(crate) async fn try_start(
        bin: &Path,
        data_dir: &Path,
        extra: &[&str],
    ) -> Result<Self, String> {
        let mut command = command(bin, data_dir);
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(extra);
        Self::spawn(command).await
    }

    /// Runs `command` (from [`command`]) as a server and waits for it to print where it
    /// listens; `Err` with its output when it exits or stays silent.
    pub(crate) async fn spawn(mut command: Command) -> Result<Self, String> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start the server");
        let output = Arc::new(Mutex::new(String::new()));
        // Both pipes are drained until the process ends, so it never blocks on a full pipe.
        let (lines, mut rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut readers = Vec::new();
        for (pipe, lines) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                Some(lines),
            ),
            (Box::new(stderr), None),
        ] {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                    drop(all);
                    if let Some(lines) = &lines {
                        let _ = lines.send(line);
                    }
                }
            }));
        }

        // `  web pages  http://ADDR/  (...)` and `  gRPC       ADDR  (...)`.
        let addrs = tokio::time::timeout(STARTUP, async {
            let (mut http, mut grpc) = (None, None);
            while let Some(line) = rx.recv().await {
                let line = line.trim_start();
                if let Some(rest) = line.strip_prefix("web pages") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let addr = url.trim_start_matches("http://").trim_end_matches('/');
                    http = addr.parse::<SocketAddr>().ok();
                } else if let Some(rest) = line.strip_prefix("gRPC") {
                    grpc = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
                if let (Some(http), Some(grpc)) = (http, grpc) {
                    return Some((http, grpc));
                }
            }
            None
        })
        .await;
        let Ok(Some((http, grpc))) = addrs else {
            let _ = child.kill();
            let status = child.wait();
            // The pipes close when the process ends: the readers finish.
            for reader in readers {
                let _ = reader.join();
            }
            let log = output.lock().unwrap().clone();
            return Err(format!("no addresses printed ({status:?}):\n{log}"));
        };
        Ok(Self {
            child,
            http,
            grpc,
            output,
        })
    }

    /// Sends SIGKILL, checks that the signal is what ended the process, and returns what it
    /// printed.
    pub(crate) fn kill(mut self) -> String {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(
                status.signal(),
                Some(9),
                "the server ended by itself, not by SIGKILL: {status:?}\n{}",
                self.log()
            );
        }
        #[cfg(not(unix))]
        assert!(!status.success(), "{status:?}");
        self.log()
    }

    /// Everything it printed so far.
    pub(crate) fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1 client without TLS.
pub(crate) fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One request; `Err` when the connection fails or breaks before the whole response arrives.
pub(crate) async fn request(
    client: &Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    let body = match json {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let exchange = async {
        let response = client.request(request.body(body)?).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(REQUEST, exchange)
        .await
        .with_context(|| format!("{method} {path}: no answer in {REQUEST:?}"))?
}
