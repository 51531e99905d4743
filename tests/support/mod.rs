//! Running the examples as real processes: build one with cargo, start it, read what it
//! prints (its bound address), stop it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// Builds the example `name` like `cargo build --example NAME` would by hand (in release
/// when the tests are), and returns the executable cargo reports in its JSON messages.
pub(crate) fn build_example(name: &str) -> PathBuf {
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

/// A running process whose output is read as it comes; killed (and reaped) when dropped.
pub(crate) struct Process {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything it printed on stdout and stderr, for failure messages.
    output: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `bin` with `args` in `dir`, with `RUST_LOG=warn` and none of the developer's
    /// `USERS_*` settings.
    pub(crate) fn start(bin: &Path, args: &[&str], dir: &Path) -> Self {
        let mut command = Command::new(bin);
        command
            .args(args)
            // Examples read `.env` from their working directory: keep the developer's out.
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("USERS_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let output = Arc::new(Mutex::new(String::new()));
        // Both pipes are drained until the process ends, so it never blocks on a full pipe.
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

    /// Reads stdout lines until `found` returns a value; panics with the output when the
    /// process ends or `within` passes first.
    pub(crate) async fn wait_for<T>(
        &mut self,
        within: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> T {
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
            Ok(Some(value)) => value,
            _ => {
                let _ = self.child.kill();
                let status = self.child.wait();
                panic!(
                    "the process did not print what was awaited ({status:?}):\n{}",
                    self.log()
                );
            }
        }
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
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
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
