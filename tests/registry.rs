//! Issue 10: Rubin's real stream. Confluent-framed Avro with a real schema
//! registry (Apicurio, `scripts/registry`), Python's confluent-kafka
//! AvroSerializer/AvroDeserializer as the peer, Rubin's published schemas
//! from PyPI's lsst-alert-packet (read from the test venv, never copied),
//! and ZTF's 4.02 layout.

mod common;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

/// The registry `scripts/test` started (ALERTSTREAM_REGISTRY).
fn registry() -> String {
    std::env::var("ALERTSTREAM_REGISTRY")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_string())
}

fn rubin_schema_root() -> PathBuf {
    PathBuf::from(python_script("registry_peer.py", &["schema-root"]).trim())
}

fn rubin_sample(version: &str) -> PathBuf {
    let (major, minor) = version.split_once('.').unwrap();
    rubin_schema_root().join(format!("{major}/{minor}/sample_data/fakeAlert.avro"))
}

fn without_meta(mut line: serde_json::Value) -> serde_json::Value {
    line.as_object_mut().unwrap().remove("_kafka");
    line
}

fn get_json(url: &str) -> serde_json::Value {
    let output = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(output.status.success(), "GET {url}");
    serde_json::from_slice(&output.stdout).unwrap()
}

const VERSIONS: [&str; 5] = ["7.0", "7.3", "9.0", "10.0", "11.1"];

fn produce_rubin(topic: &str) -> Vec<serde_json::Value> {
    let mut args = vec![
        "produce-rubin".to_string(),
        "--brokers".into(),
        brokers(),
        "--topic".into(),
        topic.into(),
        "--registry".into(),
        registry(),
    ];
    args.extend(VERSIONS.iter().map(|v| v.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    json_lines(&python_script("registry_peer.py", &args))
}

/// Python's AvroSerializer writes five of Rubin's published versions into
/// one topic; print decodes each with the writer schema its id names, equal
/// to fastavro's reading, and --meta shows five different ids.
#[test]
fn rubin_versions_from_python_print_as_fastavro_reads_them() {
    let topic = topic("rubin-mixed");
    let expected = produce_rubin(&topic);
    assert_eq!(expected.len(), VERSIONS.len());
    let url = registry();
    let stdout = ok(&[
        "print",
        &topic,
        "-e",
        "--meta",
        "-g",
        &topic,
        "--schema-registry",
        &url,
    ]);
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), expected.len(), "{stdout:.300}");
    let mut ids = std::collections::BTreeSet::new();
    for (line, want) in lines.into_iter().zip(&expected) {
        ids.insert(line["_kafka"]["schema_id"].as_u64().expect("a schema id"));
        assert_same(&without_meta(line), want, "Rubin alert");
    }
    assert_eq!(ids.len(), VERSIONS.len(), "one id per version: {ids:?}");

    // With --schema, every version prints in that one layout (11.1).
    let layout = rubin_schema_root().join("11/1");
    let stdout = ok(&[
        "print",
        &topic,
        "-e",
        "-g",
        &format!("{topic}-layout"),
        "--schema-registry",
        &url,
        "--schema",
        layout.to_str().unwrap(),
    ]);
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), expected.len());
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for line in &lines {
        assert_eq!(keys(line), keys(&lines[4]), "one layout for every version");
    }
    assert_same(&lines[4], &expected[4], "the 11.1 alert read as 11.1");
}

/// send --format confluent --schema-registry registers the schema under
/// TOPIC-value and frames with the registry's id; Python's
/// AvroDeserializer reads back the sample alerts.
#[test]
fn send_registers_and_python_deserializer_reads_back() {
    let topic = topic("registered");
    let url = registry();
    ok(&[
        "send",
        &topic,
        "--format",
        "confluent",
        "--schema-registry",
        &url,
    ]);
    let latest = get_json(&format!("{url}/subjects/{topic}-value/versions/latest"));
    let id = latest["id"].as_u64().expect("registered id");
    let samples = sample_alerts();
    let count = samples.len().to_string();
    let stdout = python_script(
        "registry_peer.py",
        &[
            "consume",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--registry",
            &url,
            "--count",
            &count,
        ],
    );
    let read = json_lines(&stdout);
    assert_eq!(read.len(), samples.len());
    for (line, alert) in read.iter().zip(&samples) {
        assert_eq!(line["schema_id"].as_u64(), Some(id));
        assert_same(
            &line["alert"],
            &expected_json(alert),
            "read by AvroDeserializer",
        );
    }
}

/// Without a registry, --schema-dir maps Rubin's ids (major*100 + minor)
/// to lsst-alert-packet's folders.
#[test]
fn schema_dir_decodes_rubin_ids_without_a_registry() {
    let topic = topic("schema-dir");
    let mut expected = Vec::new();
    for (version, id) in [("7.3", "703"), ("11.1", "1101")] {
        let sample = rubin_sample(version);
        ok(&[
            "send",
            &topic,
            "--alerts",
            sample.to_str().unwrap(),
            "--format",
            "confluent",
            "--schema-id",
            id,
        ]);
        expected.extend(json_lines(&python_script(
            "alert_peer.py",
            &["decode", sample.to_str().unwrap()],
        )));
    }
    let root = rubin_schema_root();
    let stdout = ok(&[
        "print",
        &topic,
        "-e",
        "--meta",
        "-g",
        &topic,
        "--schema-dir",
        root.to_str().unwrap(),
    ]);
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["_kafka"]["schema_id"], 703);
    assert_eq!(lines[1]["_kafka"]["schema_id"], 1101);
    for (line, want) in lines.into_iter().zip(&expected) {
        assert_same(&without_meta(line), want, "Rubin alert by --schema-dir");
    }
}

/// scripts/rubin-schemas loads every version lsst-alert-packet publishes
/// into a fresh registry under Rubin's ids (major*100 + minor); messages
/// framed with those ids then print through the registry.
#[test]
fn rubin_schemas_load_under_rubin_ids() {
    let own = OwnRegistry::start(8093);
    let url = own.url();
    let output = Command::new(python())
        .arg(root().join("scripts/rubin-schemas"))
        .arg(&url)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("lsst.v7_3.alert: id 703 ok"), "{report}");
    assert!(report.contains("lsst.v11_1.alert: id 1101 ok"), "{report}");
    let topic = topic("rubin-ids");
    let mut expected = Vec::new();
    for (version, id) in [("7.3", "703"), ("9.0", "900"), ("11.1", "1101")] {
        let sample = rubin_sample(version);
        ok(&[
            "send",
            &topic,
            "--alerts",
            sample.to_str().unwrap(),
            "--format",
            "confluent",
            "--schema-id",
            id,
        ]);
        expected.extend(json_lines(&python_script(
            "alert_peer.py",
            &["decode", sample.to_str().unwrap()],
        )));
    }
    let stdout = ok(&[
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--schema-registry",
        &url,
    ]);
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 3);
    for (line, want) in lines.iter().zip(&expected) {
        assert_same(line, want, "Rubin alert by its Rubin id");
    }
}

/// An id the registry does not know stops print by default (exit 1 naming
/// topic, partition, offset and id; nothing committed); with
/// `--on-unknown-schema skip` it is counted and skipped, and a schema whose
/// registry copy the gate refuses (recursive) is skipped either way; once
/// the schema is found (here in --schema-dir) the same group prints it all.
#[test]
fn unknown_ids_stop_by_default_and_refused_ones_are_skipped() {
    let topic = topic("unknown-id");
    let url = registry();
    let recursive =
        r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#;
    let answer = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/vnd.schemaregistry.v1+json",
        ])
        .arg(format!("{url}/subjects/{topic}-node/versions"))
        .arg("--data")
        .arg(serde_json::json!({ "schema": recursive }).to_string())
        .output()
        .unwrap();
    let refused_id = serde_json::from_slice::<serde_json::Value>(&answer.stdout).unwrap()["id"]
        .as_u64()
        .expect("the registry takes a recursive schema")
        .to_string();
    for id in ["987654", refused_id.as_str()] {
        ok(&[
            "send",
            &topic,
            "2",
            "--format",
            "confluent",
            "--schema-id",
            id,
        ]);
    }
    ok(&[
        "send",
        &topic,
        "--format",
        "confluent",
        "--schema-registry",
        &url,
    ]);
    let print = |group: &str, extra: &[&str]| {
        let mut args = vec![
            "print",
            &topic,
            "-e",
            "-g",
            group,
            "--schema-registry",
            &url,
        ];
        args.extend_from_slice(extra);
        let output = run(&args);
        let lines = json_lines(&String::from_utf8_lossy(&output.stdout)).len();
        (output.status.code(), lines, stderr(&output))
    };
    let (code, lines, log) = print(&topic, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(lines, 0, "{log}");
    assert!(
        log.contains(&format!(
            "{topic} partition 0 offset 0: schema id 987654 is unknown"
        )),
        "{log}"
    );
    assert!(log.contains("--on-unknown-schema skip"), "{log}");
    assert_eq!(committed_offset(&topic, &topic), -1, "nothing committed");

    let skipping = format!("{topic}-skip");
    let (code, lines, log) = print(&skipping, &["--on-unknown-schema", "skip"]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(lines, 12);
    assert_eq!(log.matches("schema id 987654").count(), 1, "{log}");
    assert_eq!(
        log.matches(&format!("schema id {refused_id}")).count(),
        1,
        "{log}"
    );
    assert!(log.contains("recursive"), "{log}");
    assert!(log.contains("4 skipped"), "{log}");

    // The schema found: the first group, stopped before anything, prints it all.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("9876/54");
    std::fs::create_dir_all(&version).unwrap();
    for file in std::fs::read_dir(root().join("schemas")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, version.join(file.file_name().unwrap())).unwrap();
    }
    let (code, lines, log) = print(&topic, &["--schema-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(lines, 14, "{log}");
    assert!(log.contains("2 skipped"), "the refused schema's two: {log}");
}

/// The registry keeps its schemas in a Kafka topic: stopped and started
/// again, it still knows the id a stream was written with, and print
/// decodes every alert (an in-memory registry forgot them all).
#[test]
fn a_restarted_registry_still_knows_every_id() {
    let own = OwnRegistry::start(8095);
    let topic = topic("registry-restart");
    ok(&[
        "send",
        &topic,
        "--format",
        "confluent",
        "--schema-registry",
        &own.url(),
    ]);
    assert!(own.script("stop").success());
    assert!(own.script("start").success());
    let printed = json_lines(&ok(&[
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--schema-registry",
        &own.url(),
    ]));
    assert_eq!(printed.len(), 12);
}

/// On a 3-node cluster the registry's topic is replicated like the
/// cluster's others (3), so its schemas outlive a broker: with one node
/// killed, a restarted registry still knows the stream's id and print
/// decodes every alert.
#[test]
fn a_three_node_cluster_keeps_the_registrys_schemas_on_three_replicas() {
    let cluster = Cluster::start("registry-rf3", 3, 9692, &[]);
    let brokers = cluster.brokers();
    let own = OwnRegistry::start_on(8097, Some(brokers.clone()));
    assert_eq!(cluster.replicas(&own.topic(), 0), 3, "{}", own.topic());
    let topic = topic("registry-rf3");
    ok(&[
        "-b",
        &brokers,
        "send",
        &topic,
        "--no-stamps",
        "--format",
        "confluent",
        "--schema-registry",
        &own.url(),
        "--replication-factor",
        "3",
    ]);
    cluster.kill(2);
    assert!(own.script("stop").success());
    assert!(own.script("start").success());
    let printed = json_lines(&ok(&[
        "-b",
        &brokers,
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--schema-registry",
        &own.url(),
    ]));
    assert_eq!(printed.len(), 12);
}

/// A registry of its own, stopped mid-stream: print carries on with the
/// schema it has and says so; an id it never fetched stops it (exit 1,
/// naming the registry) before that message, which a restart with
/// --registry-cache then decodes without any registry.
#[test]
fn a_registry_stopped_mid_stream() {
    let own = OwnRegistry::start(8091);
    let topic = topic("registry-down");
    let url = own.url();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    ok(&[
        "send",
        &topic,
        "--format",
        "confluent",
        "--schema-registry",
        &url,
    ]);
    let print = spawn(&[
        "print",
        &topic,
        "-g",
        &topic,
        "--schema-registry",
        &url,
        "--registry-cache",
        cache_arg,
        "-X",
        "session.timeout.ms=6000",
    ]);
    let mut printed = Vec::new();
    print.wait_stdout(12, &mut printed);
    let id = get_json(&format!("{url}/subjects/{topic}-value/versions/latest"))["id"]
        .as_u64()
        .unwrap()
        .to_string();
    // Another writer schema (a ZTF 3.3 packet's): an id print has not fetched.
    let older = ztf_fixtures().join("v3.3_472263571115115000.avro");
    ok(&[
        "send",
        &format!("{topic}-b"),
        "--alerts",
        older.to_str().unwrap(),
        "--format",
        "confluent",
        "--schema-registry",
        &url,
        "--subject",
        "other",
    ]);
    let other = get_json(&format!("{url}/subjects/other/versions/latest"))["id"]
        .as_u64()
        .unwrap()
        .to_string();
    assert_ne!(other, id);
    drop(own);
    ok(&[
        "send",
        &topic,
        "3",
        "--format",
        "confluent",
        "--schema-id",
        &id,
    ]);
    print.wait_stdout(15, &mut printed);
    ok(&[
        "send",
        &topic,
        "1",
        "--format",
        "confluent",
        "--schema-id",
        &other,
        "--no-stamps",
    ]);
    let (status, _, log) = print.wait();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches("carrying on with the 1 schema(s) already known")
            .count(),
        1,
        "said once: {log}"
    );
    assert!(
        log.contains(&format!("schema id {other} is not cached")),
        "{log}"
    );
    assert!(log.contains("127.0.0.1:8091"), "{log}");
    // Restarted with the registry still down: the cached schema decodes
    // nothing new (the 15 were committed), and the uncached id stops it again.
    let output = run(&[
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--schema-registry",
        &url,
        "--registry-cache",
        cache_arg,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    // The same stream from the start, in another group: the cached id is read
    // from --registry-cache with no registry at all.
    let output = run(&[
        "print",
        &topic,
        "-e",
        "-g",
        &format!("{topic}-again"),
        "--schema-registry",
        &url,
        "--registry-cache",
        cache_arg,
        "--max-messages",
        "15",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&output.stdout)).len(),
        15
    );
}

/// Credentials never appear in any output, whether they come in the URL or
/// a file; a registry that refuses them stops the consumer with exit 1
/// naming the registry.
#[test]
fn credentials_stay_secret_and_a_refusal_exits_1() {
    let topic = topic("registry-auth");
    let url = registry();
    let secret = "s3cret-Pa55";
    let with_user = url.replacen("http://", &format!("http://alice:{secret}@"), 1);
    ok(&[
        "send",
        &topic,
        "2",
        "--format",
        "confluent",
        "--schema-registry",
        &with_user,
    ]);
    let output = run(&[
        "-v",
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--schema-registry",
        &with_user,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains(secret));

    // A server that answers every request 401, as a registry does to a wrong
    // password, over TLS with a certificate of its own: trusted through
    // --registry-ca, so the refusal (not a TLS error) is what stops print.
    let tls = tempfile::tempdir().unwrap();
    let (cert, key) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let refuser = Refuser::start(&cert, &key);
    let file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file.as_file(), "alice:{secret}").unwrap();
    let output = run(&[
        "print",
        &topic,
        "-e",
        "-g",
        &format!("{topic}-refused"),
        "--schema-registry",
        &refuser.url,
        "--registry-auth-file",
        file.path().to_str().unwrap(),
        "--registry-ca",
        cert.to_str().unwrap(),
    ]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("refused the credentials"), "{log}");
    assert!(log.contains(&refuser.url), "{log}");
    assert!(!log.contains(secret), "{log}");
    // Without --registry-ca the certificate is not trusted: the registry is unreachable.
    let output = run(&[
        "print",
        &topic,
        "-e",
        "-g",
        &format!("{topic}-untrusted"),
        "--schema-registry",
        &refuser.url,
    ]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("is not cached: stopping"), "{log}");
    let help = String::from_utf8(
        alertstream()
            .args(["print", "--help"])
            .env("ALERTSTREAM_SCHEMA_REGISTRY", &with_user)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!help.contains(secret), "--help shows the environment's URL");
}

/// The 4.02 samples (simulated, with forced photometry) and the real older
/// ZTF packets (1.7 to 3.3) print in the one 4.02 layout with --schema schemas/.
#[test]
fn ztf_packets_of_every_version_print_in_the_4_02_layout() {
    let topic = topic("ztf-4-02");
    ok(&["send", &topic, "--format", "container"]);
    ok(&[
        "send",
        &topic,
        "--alerts",
        ztf_fixtures().to_str().unwrap(),
        "--format",
        "container",
    ]);
    let schemas = root().join("schemas");
    let stdout = ok(&[
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--schema",
        schemas.to_str().unwrap(),
    ]);
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 12 + 20);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for line in &lines {
        assert_eq!(keys(line), keys(&lines[0]));
    }
    // The samples are simulated alerts of the 4.02 schema, marked so, with
    // forced photometry (none for an object's first detection).
    for sample in &lines[..12] {
        assert_eq!(sample["schemavsn"], "simulated");
    }
    assert!(lines[..12]
        .iter()
        .any(|s| s["fp_hists"].as_array().is_some_and(|h| !h.is_empty())));
    for older in &lines[12..] {
        assert!(older["fp_hists"].is_null());
        assert!(older["candidate"]["candid"].is_i64());
    }
}

/// A registry of the test's own (scripts/registry on another port and
/// folder), stopped when dropped.
struct OwnRegistry {
    port: u16,
    dir: PathBuf,
    /// Brokers of its storage other than the test broker.
    kafka: Option<String>,
}

impl OwnRegistry {
    fn start(port: u16) -> Self {
        Self::start_on(port, None)
    }

    /// A registry keeping its schemas on the cluster at `kafka`.
    fn start_on(port: u16, kafka: Option<String>) -> Self {
        let dir = root().join(format!("target/registry-{port}"));
        let registry = Self { port, dir, kafka };
        // One left running by an earlier run would keep other storage.
        registry.script("stop");
        assert!(registry.script("start").success(), "scripts/registry start");
        registry
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/apis/ccompat/v7", self.port)
    }

    /// The Kafka topic its schemas are kept in.
    fn topic(&self) -> String {
        format!("test-registry-{}-{}", self.port, std::process::id())
    }

    fn script(&self, action: &str) -> std::process::ExitStatus {
        // The app itself is shared with the main registry's folder.
        let mut command = Command::new(root().join("scripts/registry"));
        command
            .arg(action)
            .env("REGISTRY_PORT", self.port.to_string())
            .env("REGISTRY_DIR", &self.dir)
            .env("REGISTRY_TOPIC", self.topic())
            .env("REGISTRY_APP", root().join("target/registry"));
        if let Some(kafka) = &self.kafka {
            command.env("REGISTRY_KAFKA", kafka);
        }
        command.status().unwrap()
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.script("stop");
    }
}

/// A real HTTPS server that answers 401 to everything.
struct Refuser {
    url: String,
    child: std::process::Child,
}

impl Refuser {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(b'{"error_code":401,"message":"Unauthorized"}')
    do_POST = do_GET
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = context.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new(python())
            .args(["-c", script])
            .arg(cert)
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        Self {
            url: format!("https://127.0.0.1:{}", port.trim()),
            child,
        }
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
