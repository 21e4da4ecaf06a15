//! Prometheus metrics from every command (`--metrics ADDR`): one registry
//! for the process, served at `GET /metrics` in the Prometheus text format
//! (the `prometheus-client` crate) and `GET /healthz` (200 while the brokers
//! answer, 503 when every broker is down), over HTTP. Counting
//! is always on (atomic increments on handles taken once); serving only
//! with `--metrics`. The server (axum, a task on the runtime) never holds
//! up shutdown: the process exits whatever a scrape is doing.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// End-to-end latency buckets (seconds) around Rubin's 60 s budget.
const LATENCY_BUCKETS: [f64; 15] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0,
];
/// Visit duration buckets (seconds) around the 39 s cadence.
const VISIT_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 39.0, 60.0, 120.0,
];

/// Every metric alertstream exports.
pub struct Metrics {
    pub sent: Family<Labels, Counter>,
    pub failed: Family<Labels, Counter>,
    pub consumed: Family<Labels, Counter>,
    pub routed: Family<Labels, Counter>,
    pub withheld: Family<Labels, Counter>,
    pub bytes: Family<Labels, Counter>,
    pub decode_errors: Family<Labels, Counter>,
    pub dead_lettered: Family<Labels, Counter>,
    pub lag: Family<Labels, Gauge>,
    pub latency: Histograms,
    pub visit_duration: Histograms,
    pub visits_late: Family<Labels, Counter>,
    brokers_up: AtomicBool,
    registry: Registry,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn visit_histogram() -> Histogram {
    Histogram::new(VISIT_BUCKETS)
}

impl Metrics {
    fn new() -> Self {
        let mut m = Self {
            sent: Family::default(),
            failed: Family::default(),
            consumed: Family::default(),
            routed: Family::default(),
            withheld: Family::default(),
            bytes: Family::default(),
            decode_errors: Family::default(),
            dead_lettered: Family::default(),
            lag: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            visit_duration: Family::new_with_constructor(visit_histogram as fn() -> Histogram),
            visits_late: Family::default(),
            brokers_up: AtomicBool::new(false),
            registry: Registry::with_prefix("alertstream"),
        };
        let r = &mut m.registry;
        r.register(
            "alerts_sent",
            "Alerts acknowledged by the brokers",
            m.sent.clone(),
        );
        r.register(
            "alerts_failed",
            "Alerts not delivered: fate=failed (refused), unknown (timed out or purged in flight), not_sent",
            m.failed.clone(),
        );
        r.register(
            "alerts_consumed",
            "Messages handled by print, record or filter (printed, archived, evaluated)",
            m.consumed.clone(),
        );
        r.register(
            "alerts_routed",
            "Alerts filter routed to a topic",
            m.routed.clone(),
        );
        r.register(
            "alerts_withheld",
            "Messages a filter route selected but held back: reason=visit_limit or duplicate",
            m.withheld.clone(),
        );
        r.register(
            "bytes",
            "Payload bytes, direction=in (consumed) or out (acknowledged)",
            m.bytes.clone(),
        );
        r.register(
            "decode_errors",
            "Messages reported and skipped, by reason",
            m.decode_errors.clone(),
        );
        r.register(
            "dead_lettered",
            "Messages not handled and copied to the --dead-letter topic, by source topic and reason",
            m.dead_lettered.clone(),
        );
        r.register(
            "consumer_lag",
            "Messages not yet read, per partition: a group monitor watches (end minus committed), or the consuming command itself (end minus its position)",
            m.lag.clone(),
        );
        r.register(
            "alert_latency_seconds",
            "Now minus the broker timestamp when an alert is handled",
            m.latency.clone(),
        );
        r.register(
            "visit_duration_seconds",
            "From a visit's first produce to its last acknowledgement",
            m.visit_duration.clone(),
        );
        r.register(
            "visits_late",
            "Visits that overran their interval",
            m.visits_late.clone(),
        );
        m
    }

    /// The metrics in the Prometheus text format (0.0.4), which Prometheus
    /// and `promtool check metrics` read: the crate writes OpenMetrics, whose
    /// counters are declared without their `_total` suffix and end in `# EOF`.
    pub fn render(&self) -> String {
        let mut open = String::new();
        let _ = encode(&mut open, &self.registry);
        let counters: Vec<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines().filter(|l| *l != "# EOF") {
            let declared = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(&name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            out.push_str(declared.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }

    pub fn set_brokers_up(&self, up: bool) {
        self.brokers_up.store(up, Ordering::Relaxed);
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Counts a message reported and skipped, by a coarse reason.
pub fn decode_error(topic: &str, error: &dyn std::fmt::Display) {
    let reason = decode_reason(error);
    get()
        .decode_errors
        .get_or_create(&labels(&[("topic", topic), ("reason", reason)]))
        .inc();
}

/// Counts a message copied to the dead-letter topic.
pub fn dead_lettered(topic: &str, reason: &str) {
    get()
        .dead_lettered
        .get_or_create(&labels(&[("topic", topic), ("reason", reason)]))
        .inc();
}

/// The coarse reason a message could not be decoded: the `reason` label of
/// the decode-error metric and the dead-letter header.
pub fn decode_reason(error: &dyn std::fmt::Display) -> &'static str {
    let text = error.to_string();
    if text.contains("empty message") {
        "empty"
    } else if text.contains("unknown schema id") {
        "unknown_schema"
    } else if text.contains("--max-alert-bytes") || text.contains("decompresses to more than") {
        "limit"
    } else if text.contains("container") {
        "container"
    } else {
        "schema"
    }
}

/// A label set.
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Whether `--metrics` serves: what only a scrape would read (a consumer's
/// own lag, which costs broker requests) is measured only then.
static SERVING: AtomicBool = AtomicBool::new(false);

pub fn serving() -> bool {
    SERVING.load(Ordering::Relaxed)
}

/// Serves `/metrics` and `/healthz` on `addr` (axum, on the runtime's
/// workers); fails at once, naming the address, when it cannot listen there.
pub fn serve(addr: &str) -> Result<SocketAddr> {
    let listener = bind("--metrics", addr, "127.0.0.1:9464")?;
    let local = listener.local_addr()?;
    let router = routes().fallback(|| async {
        (
            axum::http::StatusCode::NOT_FOUND,
            "try /metrics or /healthz\n",
        )
    });
    spawn_server(listener, router)?;
    SERVING.store(true, Ordering::Relaxed);
    tracing::info!("metrics on http://{local}/metrics");
    Ok(local)
}

/// `/metrics` and `/healthz`, for any server that carries them (`--metrics`, `view`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    use axum::routing::get;
    axum::Router::new()
        .route("/metrics", get(exposition))
        .route("/healthz", get(health))
}

async fn exposition() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        get().render(),
    )
}

/// Set by a server that reads files, not Kafka (`view --archive`): its
/// health says nothing of brokers.
static WITHOUT_BROKERS: AtomicBool = AtomicBool::new(false);

/// This process reads no Kafka: /healthz says so instead of "brokers reachable".
pub fn serving_without_brokers() {
    WITHOUT_BROKERS.store(true, Ordering::Relaxed);
}

async fn health() -> (axum::http::StatusCode, &'static str) {
    if WITHOUT_BROKERS.load(Ordering::Relaxed) {
        (axum::http::StatusCode::OK, "ok: serving files (no Kafka)\n")
    } else if get().brokers_up.load(Ordering::Relaxed) {
        (axum::http::StatusCode::OK, "ok: brokers reachable\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "brokers unreachable\n",
        )
    }
}

/// Listens on `addr` for `flag`, or says what to give instead.
pub fn bind(flag: &str, addr: &str, example: &str) -> Result<TcpListener> {
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| {
            crate::exit::bad_input(format!(
                "{flag} {addr}: not a host:port ({e}); give e.g. {example}"
            ))
        })?
        .collect();
    let listener = TcpListener::bind(&addresses[..]).map_err(|e| {
        anyhow!("{flag} {addr}: cannot listen there: {e} (give a free host:port, e.g. {example})")
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `router` on `listener` from a task on the runtime; the process
/// exits whatever a request is doing.
pub fn spawn_server(listener: TcpListener, router: axum::Router) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!("HTTP server stopped: {e}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = Metrics::new();
        m.sent.get_or_create(&labels(&[("topic", "t")])).inc_by(3);
        m.latency
            .get_or_create(&labels(&[("topic", "t")]))
            .observe(0.2);
        let text = m.render();
        assert!(
            text.contains("alertstream_alerts_sent_total{topic=\"t\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("alertstream_alert_latency_seconds_bucket{le=\"60.0\",topic=\"t\"} 1"),
            "{text}"
        );
    }
}
