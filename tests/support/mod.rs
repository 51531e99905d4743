//! What the tests that run the examples as real processes share: the build of an example's
//! executable, a process whose output is read as it comes, the server example reporting where
//! it listens, and an HTTP client.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
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

/// Builds the example `name` like `cargo build --example NAME` would by hand (in release
/// when the tests are), once per test binary, and returns the executable cargo reports in
/// its JSON messages.
pub(crate) fn build_example(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    built
        .get_or_insert_with(HashMap::new)
        .entry(name.to_owned())
        .or_insert_with(|| build(name))
        .clone()
}

/// The server example's executable.
pub(crate) fn build_server() -> PathBuf {
    build_example("server")
}

fn build(name: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--example",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let out = cargo.output().expect("cannot run cargo");
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == name
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "example"))
        })
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for the example {name}"))
}

/// An example as a command: run in `cwd` (examples read `.env` from their working directory:
/// keep the developer's out), without the `USERS_*` variables of the environment, logging
/// warnings only, no stdin.
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

/// A running process whose output is read as it comes; killed (and reaped) when dropped.
pub(crate) struct Process {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything it printed on stdout and stderr, for failure messages.
    output: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `bin` with `args` in `dir` (see [`command`]).
    pub(crate) fn start(bin: &Path, args: &[&str], dir: &Path) -> Self {
        let mut command = command(bin, dir);
        command.args(args);
        Self::spawn(command)
    }

    /// Runs `command` with both pipes drained until the process ends, so it never blocks on
    /// a full pipe.
    pub(crate) fn spawn(mut command: Command) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        let output = Arc::new(Mutex::new(String::new()));
        let (lines, rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (pipe, lines) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                Some(lines),
            ),
            (Box::new(stderr), None),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
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
            });
        }
        Self {
            child,
            lines: rx,
            output,
        }
    }

    /// Reads stdout lines until `found` returns a value; `Err` with the output when the
    /// process ends or `within` passes first (the process is then killed).
    pub(crate) async fn try_wait_for<T>(
        &mut self,
        within: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let seen = tokio::time::timeout(within, async {
            while let Some(line) = self.lines.recv().await {
                if let Some(value) = found(&line) {
                    return Some(value);
                }
            }
            None
        })
        .await;
        match seen {
            Ok(Some(value)) => Ok(value),
            _ => {
                let _ = self.child.kill();
                let status = self.child.wait();
                Err(format!("({status:?}):\n{}", self.log()))
            }
        }
    }

    /// Like [`Process::try_wait_for`], panicking with the output.
    pub(crate) async fn wait_for<T>(
        &mut self,
        within: Duration,
        found: impl FnMut(&str) -> Option<T>,
    ) -> T {
        self.try_wait_for(within, found)
            .await
            .unwrap_or_else(|log| panic!("the process did not print what was awaited {log}"))
    }

    /// Waits up to `within` for the process to end by itself; its exit status.
    pub(crate) async fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the process did not end within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGINT, as Ctrl-C would (Unix).
    pub(crate) fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends the signal `name` (`INT`, `TERM`, ...) with kill(1) (Unix).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGKILL and reaps the process; its exit status.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        self.child.kill().unwrap();
        self.child.wait().unwrap()
    }

    /// Everything it printed so far.
    pub(crate) fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server example as a process, with where it listens; killed when dropped.
pub(crate) struct Server {
    process: Process,
    /// Where the pages and the JSON API listen.
    pub(crate) http: SocketAddr,
    /// Where gRPC listens.
    pub(crate) grpc: SocketAddr,
}

impl Server {
    /// Starts the server on `data_dir` (also its working directory), both listeners on port
    /// 0, with `extra` arguments; panics with its output when it does not start.
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
    pub(crate) async fn spawn(command: Command) -> Result<Self, String> {
        let mut process = Process::spawn(command);
        // `  web pages  http://ADDR/  (...)` and `  gRPC       ADDR  (...)`.
        let (mut http, mut grpc) = (None, None);
        let (http, grpc) = process
            .try_wait_for(STARTUP, |line| {
                let line = line.trim_start();
                if let Some(rest) = line.strip_prefix("web pages") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let addr = url.trim_start_matches("http://").trim_end_matches('/');
                    http = addr.parse::<SocketAddr>().ok();
                } else if let Some(rest) = line.strip_prefix("gRPC") {
                    grpc = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
                http.zip(grpc)
            })
            .await
            .map_err(|log| format!("no addresses printed {log}"))?;
        Ok(Self {
            process,
            http,
            grpc,
        })
    }

    /// Sends SIGKILL, checks that the signal is what ended the process, and returns what it
    /// printed.
    pub(crate) fn kill(mut self) -> String {
        let status = self.process.kill();
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

    /// Sends the signal `name` and waits for the server to end by itself; its exit status.
    pub(crate) async fn stop(mut self, name: &str) -> ExitStatus {
        self.process.signal(name);
        self.process.wait(STARTUP).await
    }

    /// Everything it printed so far.
    pub(crate) fn log(&self) -> String {
        self.process.log()
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
    request_as(client, addr, None, method, path, json).await
}

/// [`request`] with `Authorization: Bearer TOKEN` when a token is given.
pub(crate) async fn request_as(
    client: &Client,
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
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
