//! Shared by the integration tests: the real broker, fresh topics, running the
//! binary, reading its output. The broker is the one `scripts/kafka start`
//! runs (or ALERTSTREAM_BROKERS); tests fail, never skip, without it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apache_avro::types::Value;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Every run of the binary is bounded: a hang fails the test instead of blocking CI.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// How long a Python peer may run: the slowest reads thousands of alerts
/// with astropy.
pub const PEER_LIMIT: Duration = Duration::from_secs(600);

pub fn brokers() -> String {
    std::env::var("ALERTSTREAM_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

/// A topic name no other test (or earlier run) uses.
pub fn topic(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test-{name}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000_000
    )
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real ZTF packets in tests/data/ztf (public data, copied into the repo).
pub fn ztf_fixtures() -> PathBuf {
    let dir = root().join("tests/data/ztf");
    assert!(dir.is_dir(), "ZTF fixtures not found at {}", dir.display());
    dir
}

/// The binary, pointed at the test broker.
pub fn alertstream() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alertstream"));
    command
        .env("ALERTSTREAM_BROKERS", brokers())
        .env_remove("RUST_LOG");
    command
}

/// Runs to completion within [`RUN_LIMIT`].
pub fn run(args: &[&str]) -> Output {
    let child = alertstream()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alertstream");
    wait_with_limit(child, RUN_LIMIT)
}

pub fn wait_with_limit(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    let killer = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let output = child.wait_with_output().expect("wait for alertstream");
    let _ = done_tx.send(());
    let _ = killer.join();
    output
}

/// Runs and asserts success, returning stdout.
pub fn ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "alertstream {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:.200}")))
        .collect()
}

/// The source alerts of the built-in samples, decoded from the files in the repo.
pub fn sample_alerts() -> Vec<Value> {
    let mut alerts = Vec::new();
    for i in 1..=3 {
        alerts.extend(container_alerts(
            &root().join(format!("sample-alerts/visit-{i}.avro")),
        ));
    }
    alerts
}

pub fn container_alerts(path: &std::path::Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    apache_avro::Reader::new(file)
        .unwrap()
        .map(|v| v.unwrap())
        .collect()
}

/// An alert as `print` should show it.
pub fn expected_json(alert: &Value) -> serde_json::Value {
    let mut out = Vec::new();
    alertstream::avro::json::write_alert(&mut out, alert);
    serde_json::from_slice(&out).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = runtime()
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .expect("create topic");
    for r in results {
        r.expect("topic created");
    }
}

/// Whether the broker knows the topic.
pub fn topic_exists(topic: &str) -> bool {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("broker metadata");
    metadata.topics().iter().any(|t| t.name() == topic)
}

/// How many partitions the broker says `topic` has (0: no such topic).
pub fn partitions_of(topic: &str) -> usize {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("broker metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len())
}

/// Produces raw payloads (e.g. garbage) with a plain client.
pub fn produce_raw(topic: &str, payloads: &[&[u8]]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for payload in payloads {
        producer
            .send(BaseRecord::<(), [u8]>::to(topic).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// A running process whose stdout and stderr lines arrive on channels.
pub struct Running {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

pub fn spawn(args: &[&str]) -> Running {
    let mut child = alertstream()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alertstream");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches('\n')
                        .to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

impl Running {
    /// Waits for a stderr line matching `pred`, returning every line read so far.
    pub fn wait_stderr(
        &self,
        what: &str,
        mut pred: impl FnMut(&str) -> bool,
        seen: &mut Vec<String>,
    ) {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "gave up waiting for {what}; stderr so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Waits until `seen` holds `count` stdout lines.
    pub fn wait_stdout(&self, count: usize, seen: &mut Vec<String>) {
        let deadline = Instant::now() + RUN_LIMIT;
        while seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("gave up waiting for {count} lines; {} so far", seen.len()),
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> (std::process::ExitStatus, Vec<String>, Vec<String>) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait()
    }

    /// Waits (within [`RUN_LIMIT`]) for the process to exit by itself.
    pub fn wait(mut self) -> (std::process::ExitStatus, Vec<String>, Vec<String>) {
        let pid = self.child.id();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let killer = std::thread::spawn(move || {
            if done_rx.recv_timeout(RUN_LIMIT).is_err() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        let status = self.child.wait().unwrap();
        let _ = done_tx.send(());
        let _ = killer.join();
        // The process has exited, so both pipes close and the readers finish.
        (
            status,
            self.stdout.iter().collect(),
            self.stderr.iter().collect(),
        )
    }
}

/// Asserts two JSON values are equal, naming the first place they differ
/// (alerts are too large to print whole).
pub fn assert_same(actual: &serde_json::Value, expected: &serde_json::Value, what: &str) {
    if let Some(place) = first_difference(actual, expected, String::new()) {
        panic!("{what}: differs at {place}");
    }
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(p) = first_difference(v, w, format!("{path}.{k}")) {
                            return Some(p);
                        }
                    }
                    None => return Some(format!("{path}.{k}: unexpected field")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: missing field"))
        }
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!(
            "{path}: {:.80} != {:.80}",
            a.to_string(),
            b.to_string()
        )),
    }
}

/// A Kafka cluster of its own, started by scripts/kafka in its own folder and
/// ports, stopped (and wiped) when dropped, even if the test panics.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    pub nodes: u32,
}

impl Cluster {
    pub fn start(name: &str, nodes: u32, port: u16, extra: &[&str]) -> Self {
        let cluster = Self {
            dir: root().join("target").join(format!("kafka-{name}")),
            port,
            controller_port: port + 10_000,
            nodes,
        };
        let mut args = vec!["start".to_string(), "--brokers".into(), nodes.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.script(&args);
        cluster
    }

    fn script(&self, args: &[&str]) -> String {
        let output = Command::new(root().join("scripts/kafka"))
            .args(args)
            .env("KAFKA_DIR", &self.dir)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .output()
            .expect("run scripts/kafka");
        assert!(
            output.status.success(),
            "scripts/kafka {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn brokers(&self) -> String {
        (0..self.nodes)
            .map(|i| format!("127.0.0.1:{}", u32::from(self.port) + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The process id of a node, for signals (SIGSTOP: a stuck broker).
    pub fn pid(&self, node: i32) -> u32 {
        let file = self.dir.join(format!("node-{node}/pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    pub fn kill(&self, node: i32) {
        self.script(&["kill", &node.to_string()]);
    }

    pub fn restart(&self, node: i32) {
        self.script(&["restart", &node.to_string()]);
    }

    /// The broker (node id) leading `partition` of `topic`.
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.partition(topic, partition, |p| p.leader())
    }

    /// How many replicas `partition` of `topic` has.
    pub fn replicas(&self, topic: &str, partition: i32) -> usize {
        self.partition(topic, partition, |p| p.replicas().len())
    }

    fn partition<T>(
        &self,
        topic: &str,
        partition: i32,
        read: impl Fn(&rdkafka::metadata::MetadataPartition) -> T,
    ) -> T {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("allow.auto.create.topics", "false")
            .create()
            .unwrap();
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("cluster metadata");
        read(&metadata.topics()[0].partitions()[partition as usize])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/kafka"))
            .args(["stop", "--wipe"])
            .env("KAFKA_DIR", &self.dir)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .output();
    }
}

/// Appends a line to target/failure-report.txt (scripts/test shows it) and stderr.
pub fn report(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root().join("target/failure-report.txt"))
    {
        let _ = writeln!(file, "{line}");
    }
}

/// `(visit, index)` of a `print --meta` line.
pub fn visit_and_index(line: &serde_json::Value) -> (u64, u64) {
    let meta = &line["_kafka"];
    (
        meta["visit"].as_u64().expect("visit header"),
        meta["index"].as_u64().expect("index header"),
    )
}

/// The offset `group` has committed on partition 0 of `topic` (-1 if none).
pub fn committed_offset(group: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    // A blocking request to the group coordinator: the wait is on the broker's answer.
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    match committed.find_partition(topic, 0).map(|p| p.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => -1,
    }
}

/// Every consumer group the cluster knows whose name starts with `prefix`,
/// including groups with no members left that keep committed offsets.
pub fn groups_named(prefix: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let list = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .expect("the cluster's groups");
    list.groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Runs to completion under `/usr/bin/time`, returning the output and the
/// peak resident memory of the process in bytes.
pub fn run_measured(args: &[&str]) -> (Output, u64) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(env!("CARGO_BIN_EXE_alertstream"))
        .args(args)
        .env("ALERTSTREAM_BROKERS", brokers())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/time (Debian package time) runs alertstream");
    let output = wait_with_limit(child, RUN_LIMIT);
    let text = std::fs::read_to_string(report.path()).unwrap();
    let kilobytes: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time: {text}"));
    (output, kilobytes * 1024)
}

/// Sends a signal to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The test venv's Python (fastavro, confluent-kafka, pyarrow), made by scripts/test.
pub fn python() -> PathBuf {
    let path = std::env::var_os("ALERTSTREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "Python with fastavro and confluent-kafka not found at {} (scripts/test makes .venv)",
        path.display()
    );
    path
}

/// Runs a script of tests/peer/ and returns its stdout; fails on failure.
pub fn python_script(script: &str, args: &[&str]) -> String {
    let child = Command::new(python())
        .arg(root().join("tests/peer").join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python peer");
    // A peer stuck on a service (a registry request never answered) fails
    // its test instead of holding the whole suite.
    let output = wait_with_limit(child, PEER_LIMIT);
    assert!(
        output.status.success(),
        "{script} {} failed ({}; killed at {PEER_LIMIT:?} if still running):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A message as a read_committed reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub partition: i32,
    pub payload: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// Every committed message of `topic` (all partitions, from the beginning
/// to the end), read with a plain client: what a read_committed reader gets.
pub fn read_committed(topic: &str) -> Vec<RawMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("raw-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut at_end = std::collections::HashSet::new();
    let mut messages = Vec::new();
    let deadline = Instant::now() + RUN_LIMIT;
    while at_end.len() < partitions {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not reach its end"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => messages.push(RawMessage {
                partition: m.partition(),
                payload: m.payload().unwrap_or_default().to_vec(),
                key: m.key().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis(),
            }),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    messages
}

/// Waits until `group` has no members: a consumer killed with -9 stays a
/// member until its session times out, holding its partitions, and a
/// restarted `-e` consumer would end at the end of the others.
/// Members `group` has now, as the broker answers once.
pub fn group_members(group: &str) -> usize {
    let client: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    client
        .client()
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .map(|list| list.groups().iter().map(|g| g.members().len()).sum())
        .expect("the group list")
}

pub fn wait_until_group_is_empty(group: &str) {
    let consumer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        let members = consumer
            .client()
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .map(|list| {
                list.groups()
                    .iter()
                    .map(|g| g.members().len())
                    .sum::<usize>()
            })
            .unwrap_or(usize::MAX);
        if members == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} still has {members} member(s)"
        );
        // The broker only says, when asked, that the session has expired.
        std::thread::sleep(Duration::from_millis(250));
    }
}
