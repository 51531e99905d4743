//! What a test binary logs and counts, captured so tests can check log levels and metric
//! labels. Both are process-wide: a thread-local subscriber (`set_default`) misses events
//! whose callsites another test's thread registered first, and `metrics` has one global
//! recorder. Tests running beside each other share them, so each test finds its own lines
//! (by path or request id); a test that counts takes a recorder of its own
//! ([`local_prometheus`]).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// Every log line (INFO and above, no colours, no timestamps) written since the first call,
/// which installs the global subscriber. Lines start with the level, then the spans:
/// `ERROR request{request_id=... peer=127.0.0.1 ...}: target: message fields`.
pub fn captured_logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(Arc::clone(&sink)))
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("another global subscriber is installed");
        buffer
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The level a captured log line starts with (`INFO`, `ERROR`...).
pub fn level(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or_default()
}

/// A Prometheus recorder of one test's own, which counts exactly what that test causes: make
/// it the thread's recorder (`let _local = metrics::set_default_local_recorder(&recorder)`)
/// in a current-thread runtime (plain `#[tokio::test]`), where the test's server and client
/// tasks run on its thread; `recorder.handle().render()` gives the page. Other tests record
/// into the global recorder or their own, never into this one.
pub fn local_prometheus() -> PrometheusRecorder {
    PrometheusBuilder::new().build_recorder()
}

/// The series of a Prometheus text page whose name starts with `prefix`: each sample line
/// without its value (`http_requests_total{method="GET",route="/healthz",status="200"}`).
pub fn series<'a>(page: &'a str, prefix: &str) -> Vec<&'a str> {
    page.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s))
        .collect()
}

/// The value of the sample line `series` on a Prometheus text page, or 0.
pub fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
