//! Prometheus metrics on the real broker and a real Prometheus server
//! (scripts/prometheus): counters equal to what was sent and printed,
//! promtool accepts the exposition, Prometheus's query answers the same
//! numbers, filter counts what it routed and held back, monitor exports a
//! group's lag, a blocked print its own, a late visit is counted, a port in use fails at start, a
//! scrape never holds up shutdown.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port free on loopback now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET a path of a local HTTP server: (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of one sample line of an exposition, e.g. `name{labels}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The exposition of a running command. Its metrics endpoint listens
/// before the command starts working, so once it has printed or sent
/// anything the endpoint answers.
fn scrape(port: u16) -> String {
    let (status, body) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    body
}

fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Prometheus (scripts/prometheus) scraping `port` while it lives.
struct Scraped {
    file: std::path::PathBuf,
}

impl Scraped {
    fn new(name: &str, port: u16) -> Self {
        let dir = root().join("target/prometheus/targets");
        assert!(
            dir.is_dir(),
            "Prometheus is not running: scripts/prometheus start (scripts/test does)"
        );
        let file = dir.join(format!("{name}.json"));
        let temp = dir.join(format!(".{name}.tmp"));
        std::fs::write(
            &temp,
            format!(r#"[{{"targets":["127.0.0.1:{port}"],"labels":{{"test":"{name}"}}}}]"#),
        )
        .unwrap();
        std::fs::rename(&temp, &file).unwrap();
        Self { file }
    }

    /// Polls Prometheus's query API until `query` returns `expected`.
    fn wait_for(&self, query: &str, expected: f64) {
        let port: u16 = std::env::var("PROMETHEUS_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(19090);
        let path = format!("/api/v1/query?query={}", encode(query));
        let deadline = Instant::now() + RUN_LIMIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            let (_, body) = get(port, &path);
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(value) = json["data"]["result"][0]["value"][1].as_str() {
                if value.parse::<f64>().ok() == Some(expected) {
                    return;
                }
            }
            last = body;
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus never answered {expected} to {query}: {last}");
    }
}

impl Drop for Scraped {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn print_counts_what_it_printed_and_prometheus_sees_the_same() {
    let topic = topic("metrics-print");
    ok(&["send", &topic]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let print = spawn(&["--metrics", &addr, "print", &topic, "--group", "g"]);
    for _ in 0..12 {
        print.stdout.recv_timeout(RUN_LIMIT).expect("an alert line");
    }
    let series = |name: &str| format!("{name}{{topic=\"{topic}\"}}");
    // A line is printed before its message is counted: wait for the count.
    let text = scrape_until(port, &series("alertstream_alerts_consumed_total"), 12.0);
    promtool_accepts(&text);
    assert_eq!(
        sample(&text, &series("alertstream_alerts_consumed_total")),
        Some(12.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &series("alertstream_alert_latency_seconds_count")),
        Some(12.0)
    );
    let bytes = sample(
        &text,
        &format!("alertstream_bytes_total{{topic=\"{topic}\",direction=\"in\"}}"),
    )
    .unwrap();
    assert!(bytes > 12.0 * 40_000.0, "{bytes}");
    let (status, body) = get(port, "/healthz");
    assert!(status.contains("200"), "{status} {body}");
    let scraped = Scraped::new(&topic, port);
    scraped.wait_for(
        &format!("alertstream_alerts_consumed_total{{topic=\"{topic}\"}}"),
        12.0,
    );
    // A scrape hanging open while the command stops does not hold it up.
    let _idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (status, _, _) = print.terminate();
    assert!(status.success());
}

/// Scrapes until `series` reads `value`: the command counts as it works.
fn scrape_until(port: u16, series: &str, value: f64) -> String {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        let text = scrape(port);
        if sample(&text, series) == Some(value) {
            return text;
        }
        assert!(Instant::now() < deadline, "{series} never {value}: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn filter_counts_what_it_routed_and_held_back() {
    let topic = topic("metrics-filter");
    let out = format!("{topic}-once");
    // Two visits of the same 12 objects: the second visit is all duplicates.
    ok(&[
        "send",
        &topic,
        "--no-stamps",
        "--repeat",
        "--interval",
        "0.2",
        "--max-repeats",
        "2",
    ]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let filter = spawn(&[
        "--metrics",
        &addr,
        "filter",
        &topic,
        "--group",
        "g",
        "--where",
        "candid > 0",
        "--to",
        &out,
        "--dedupe-key",
        "objectId",
        "--dedupe-window",
        "1d",
    ]);
    let mut log = Vec::new();
    filter.wait_stderr(
        "an assignment",
        |l| l.contains("partitions assigned"),
        &mut log,
    );
    let labels = format!("topic=\"{topic}\",to=\"{out}\"");
    let text = scrape_until(
        port,
        &format!("alertstream_alerts_withheld_total{{{labels},reason=\"duplicate\"}}"),
        12.0,
    );
    promtool_accepts(&text);
    assert_eq!(
        sample(
            &text,
            &format!("alertstream_alerts_routed_total{{{labels}}}")
        ),
        Some(12.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("alertstream_alerts_withheld_total{{{labels},reason=\"visit_limit\"}}")
        ),
        Some(0.0),
        "{text}"
    );
    let (status, _, _) = filter.terminate();
    assert!(status.success());
}

#[test]
fn send_counts_acknowledged_alerts_and_late_visits() {
    let topic = topic("metrics-send");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // Visits 3 s apart: between them the counters stand still.
    let send = spawn(&[
        "--metrics",
        &addr,
        "send",
        &topic,
        "--repeat",
        "--interval",
        "3",
        "--max-repeats",
        "3",
    ]);
    let mut log = Vec::new();
    send.wait_stderr(
        "visit 2 delivered",
        |l| l.contains("visit 2/3: 12 alert(s) delivered"),
        &mut log,
    );
    let text = scrape(port);
    promtool_accepts(&text);
    assert_eq!(
        sample(
            &text,
            &format!("alertstream_alerts_sent_total{{topic=\"{topic}\"}}")
        ),
        Some(24.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("alertstream_visit_duration_seconds_count{{topic=\"{topic}\"}}")
        ),
        Some(2.0)
    );
    // Issue 24: the late-visit series exists from the start, at 0, so that
    // the shipped rule's increase() sees the first late visit.
    assert_eq!(
        sample(
            &text,
            &format!("alertstream_visits_late_total{{topic=\"{topic}\"}}")
        ),
        Some(0.0),
        "{text}"
    );
    let (status, _, _) = send.terminate();
    assert!(status.success());

    // Visits of 2,000 alerts every 10 ms overrun their interval: counted late.
    let late = common::topic("metrics-late");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let send = spawn(&[
        "--metrics",
        &addr,
        "send",
        &late,
        "2000",
        "--no-stamps",
        "--repeat",
        "--interval",
        "0.01",
        "--max-repeats",
        "1000",
    ]);
    let mut log = Vec::new();
    send.wait_stderr("a visit overrun", |l| l.contains("overran its"), &mut log);
    let text = scrape(port);
    let counted = sample(
        &text,
        &format!("alertstream_visits_late_total{{topic=\"{late}\"}}"),
    )
    .unwrap_or(0.0);
    assert!(counted >= 1.0, "{text}");
    let (status, _, _) = send.terminate();
    assert!(status.success());
}

#[test]
fn monitor_exports_the_lag_of_the_groups_it_watches() {
    let topic = topic("metrics-lag");
    ok(&["send", &topic]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let monitor = spawn(&[
        "--metrics",
        &addr,
        "monitor",
        &topic,
        "--group",
        "readers",
        "--every",
        "0.2",
    ]);
    let series =
        format!("alertstream_consumer_lag{{topic=\"{topic}\",partition=\"0\",group=\"readers\"}}");
    let scraped = Scraped::new(&topic, port);
    scraped.wait_for(&series, 12.0);
    let printed = json_lines(&ok(&["print", &topic, "--group", "readers", "-e"]));
    assert_eq!(
        printed.len(),
        12,
        "the watched group still gets every alert"
    );
    scraped.wait_for(&series, 0.0);
    let (status, _, _) = monitor.terminate();
    assert!(status.success());
}

/// A print held back part-way through a topic by a stdout nobody reads
/// exports its own group's lag on every partition it was assigned (the end
/// offset minus its position, the committed offset for one it has not
/// reached), kept up to date while it is blocked, and 0 once it has caught up.
#[test]
fn a_blocked_print_exports_its_own_lag() {
    let topic = topic("own-lag");
    create_topic(&topic, 2);
    ok(&["send", &topic, "1000", "--no-stamps"]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut print = alertstream()
        .args(["--metrics", &addr, "print", &topic, "-g", &topic])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let series = |partition: u32| {
        format!(
            "alertstream_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\",group=\"{topic}\"}}"
        )
    };
    let total = |text: &str| Some(sample(text, &series(0))? + sample(text, &series(1))?);
    // Blocked once the pipe is full, a line or two in: both partitions shown.
    let deadline = Instant::now() + RUN_LIMIT;
    let blocked_at = loop {
        // The endpoint listens once the command has started.
        let text = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => get(port, "/metrics").1,
            Err(_) => String::new(),
        };
        if let Some(lag) = total(&text).filter(|l| *l >= 990.0) {
            break lag;
        }
        assert!(Instant::now() < deadline, "no lag of its own: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // More alerts while it is blocked: its lag grows by them, position fixed.
    ok(&["send", &topic, "100", "--no-stamps"]);
    let deadline = Instant::now() + RUN_LIMIT;
    while total(&scrape(port)) != Some(blocked_at + 100.0) {
        assert!(
            Instant::now() < deadline,
            "lag never {}",
            blocked_at + 100.0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Read what it printed: it catches up, and its lag falls to 0.
    let mut stdout = print.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        stdout.read_to_end(&mut all).unwrap();
        all
    });
    scrape_until(port, &series(0), 0.0);
    scrape_until(port, &series(1), 0.0);
    signal(print.id(), "TERM");
    assert!(print.wait().unwrap().success());
    let printed = reader.join().unwrap();
    assert_eq!(printed.iter().filter(|b| **b == b'\n').count(), 1100);
}

#[test]
fn a_port_in_use_fails_at_start_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run(&["--metrics", &addr, "print", "anything", "-e"]);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains(&addr) && log.contains("cannot listen"),
        "{log}"
    );
}

#[test]
fn alert_rules_pass_promtool() {
    let output = Command::new("promtool")
        .args(["check", "rules", "monitoring/alerts.yml"])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "promtool check rules: {text}");
    assert!(text.contains("4 rules found"), "{text}");
}
