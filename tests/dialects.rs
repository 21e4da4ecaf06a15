//! Brokers' dialects: Fink's key-schema framing (the writer schema's JSON in
//! the message key, the value bare Avro) read by fink-client's own
//! AlertConsumer and by alertstream, hostile keys, keys by alert field,
//! Rubin's lsst-alert-stream client both ways, and Babamul's deserializer
//! on container framing.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(ztf_fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    files.sort();
    files
}

/// 20 real ZTF packets of seven schema versions sent with --format
/// container (ZTF's and Babamul's framing): Babamul's own deserializer
/// (babamul.avro.deserialize_alert, from PyPI) reads each as fastavro reads
/// the source files.
#[test]
fn babamul_reads_a_container_stream_as_fastavro_does() {
    let topic = topic("container-babamul");
    let names: Vec<String> = fixtures().iter().map(|f| f.display().to_string()).collect();
    let mut decode = vec!["decode"];
    decode.extend(names.iter().map(String::as_str));
    let expected = json_lines(&python_script("alert_peer.py", &decode));
    assert_eq!(expected.len(), 20);
    let mut send = vec!["send", &topic, "--format", "container"];
    for name in &names {
        send.extend(["--alerts", name.as_str()]);
    }
    ok(&send);
    let count = expected.len().to_string();
    let babamul = json_lines(&python_script(
        "babamul_check.py",
        &[&brokers(), &topic, &count],
    ));
    assert_eq!(babamul.len(), expected.len());
    for (i, (read, want)) in babamul.iter().zip(&expected).enumerate() {
        assert_same(read, want, &format!("babamul, alert {i}"));
    }
}

/// 20 real ZTF packets of seven schema versions sent with --format
/// key-schema: fink-client's AlertConsumer, given no schema, reads each as
/// fastavro reads the source files, and so does `print` in --format auto.
#[test]
fn fink_client_reads_a_key_schema_stream_as_fastavro_does() {
    let topic = topic("key-schema-fink");
    let files = fixtures();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut decode = vec!["decode"];
    decode.extend(names.iter().map(String::as_str));
    let expected = json_lines(&python_script("alert_peer.py", &decode));
    assert_eq!(expected.len(), 20);
    let mut send = vec!["send", &topic, "--format", "key-schema"];
    for name in &names {
        send.extend(["--alerts", name.as_str()]);
    }
    ok(&send);
    let count = expected.len().to_string();
    let fink = json_lines(&python_script(
        "fink_check.py",
        &[&brokers(), &topic, &count],
    ));
    assert_eq!(fink.len(), expected.len());
    for (i, (read, want)) in fink.iter().zip(&expected).enumerate() {
        assert_same(read, want, &format!("fink-client, alert {i}"));
    }
    let printed = json_lines(&ok(&["print", &topic, "-e", "-g", &topic, "--meta"]));
    assert_eq!(printed.len(), expected.len());
    for (i, (line, want)) in printed.iter().zip(&expected).enumerate() {
        assert_eq!(line["_kafka"]["framing"], "key-schema");
        let mut line = line.clone();
        line.as_object_mut().unwrap().remove("_kafka");
        assert_same(&line, want, &format!("print, alert {i}"));
    }

    // Written by Python as Fink writes (fastavro, confluent-kafka, the
    // schema's JSON as the key): print reads every version as written.
    let from_python = format!("{topic}-python");
    let brokers = brokers();
    let mut produce = vec![
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &from_python,
        "--format",
        "key-schema",
    ];
    produce.extend(names.iter().map(String::as_str));
    python_script("alert_peer.py", &produce);
    let printed = json_lines(&ok(&["print", &from_python, "-e", "-g", &from_python]));
    assert_eq!(printed.len(), expected.len());
    for (i, (line, want)) in printed.iter().zip(&expected).enumerate() {
        assert_same(
            line,
            want,
            &format!("print of Python's key-schema alert {i}"),
        );
    }
}

/// The bytes of one sample alert without cutouts, bare Avro, and the
/// built-in schema's JSON as send puts it in the key.
fn bare_alert_and_schema(topic: &str) -> (Vec<u8>, Vec<u8>) {
    let scratch = format!("{topic}-scratch");
    ok(&[
        "send",
        &scratch,
        "1",
        "--no-stamps",
        "--format",
        "key-schema",
    ]);
    let message = read_committed(&scratch).remove(0);
    (message.payload, message.key.unwrap())
}

/// Hostile keys: each message is skipped with a warning naming its offset,
/// the good alerts around them print, and memory stays bounded.
#[test]
fn hostile_keys_skip_their_message_and_nothing_else() {
    let topic = topic("key-schema-hostile");
    let (alert, schema) = bare_alert_and_schema(&topic);
    let deep = format!(
        "{}\"int\"{}",
        "{\"type\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let huge = format!(
        r#"{{"type":"record","name":"x","fields":[],"doc":"{}"}}"#,
        "a".repeat(9 << 20)
    );
    let other = r#"{"type":"record","name":"other","fields":[{"name":"x","type":"string"}]}"#;
    let keys: Vec<(&[u8], &str)> = vec![
        (&schema, "good"),
        (huge.as_bytes(), "over the 1048576"),
        (deep.as_bytes(), "recursion limit"),
        (br#"{"type":"banana"}"#, "not valid Avro"),
        (other.as_bytes(), "other"),
        (&schema, "good"),
    ];
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "10000000")
        .create()
        .unwrap();
    for (key, _) in &keys {
        producer
            .send(BaseRecord::to(&topic).key(*key).payload(&alert))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let (output, peak) = run_measured(&["print", &topic, "-e", "-g", &topic]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&output.stdout)).len(),
        2,
        "{log}"
    );
    for (offset, (_, why)) in keys.iter().enumerate().filter(|(_, k)| k.1 != "good") {
        let warning = log
            .lines()
            .find(|l| l.contains(&format!("partition 0 offset {offset}: cannot decode")))
            .unwrap_or_else(|| panic!("no warning for offset {offset}: {log}"));
        if *why != "other" {
            assert!(warning.contains(why), "{warning}");
        }
    }
    assert!(log.contains("4 skipped"), "{log}");
    assert!(peak < 200 << 20, "peak RSS {} MB", peak >> 20);
}

/// `send --key FIELD`: each message is keyed by the alert's objectId, so
/// an object's alerts share a partition; the simulator keys its alerts too.
#[test]
fn send_keys_each_message_by_an_alert_field() {
    let topic = topic("send-key");
    ok(&["send", &topic, "--key", "objectId", "--no-stamps"]);
    let keys: Vec<String> = read_committed(&topic)
        .into_iter()
        .map(|m| String::from_utf8(m.key.expect("a key")).unwrap())
        .collect();
    let objects: Vec<String> = json_lines(&ok(&["print", &topic, "-e", "-g", &topic]))
        .iter()
        .map(|l| l["objectId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, objects);

    let simulated = format!("{topic}-simulated");
    ok(&[
        "send",
        &simulated,
        "300",
        "--simulate",
        "ztf",
        "--key",
        "objectId",
        "--partitions",
        "4",
        "--no-stamps",
    ]);
    let messages = read_committed(&simulated);
    assert_eq!(messages.len(), 300);
    let mut partitions: HashMap<Vec<u8>, HashSet<i32>> = HashMap::new();
    for message in &messages {
        let key = message.key.clone().expect("a key");
        assert!(key.starts_with(b"ZTF"), "{}", String::from_utf8_lossy(&key));
        partitions.entry(key).or_default().insert(message.partition);
    }
    assert!(partitions.values().all(|p| p.len() == 1), "{partitions:?}");
    let used: BTreeMap<i32, usize> = messages.iter().fold(BTreeMap::new(), |mut m, msg| {
        *m.entry(msg.partition).or_default() += 1;
        m
    });
    assert!(used.len() > 1, "keys spread over partitions: {used:?}");
}

/// --key goes with every format but key-schema, whose key is the schema.
#[test]
fn key_schema_and_key_field_do_not_mix() {
    let output = run(&[
        "send",
        "some-topic",
        "--format",
        "key-schema",
        "--key",
        "objectId",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("the key is the writer schema"));
    let output = run(&["send", "some-topic", "--key", "objectid"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("objectId"),
        "suggests the real name"
    );
    let output = run(&["send", "some-topic", "--key", "candidate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("not one value per alert"));
}

/// Rubin's own client, lsst-alert-stream: what its serialize_alert writes
/// (Confluent framing, schema id 0, the latest schema) prints with
/// `--format confluent --schema`, equal to the alerts it sent; what
/// alertstream sends with `--schema-id 0` its deserialize_alert reads back.
#[test]
fn lsst_alert_stream_reads_and_writes_what_alertstream_does() {
    let peer = |args: &[&str]| python_script("lsst_stream_check.py", args);
    let schema_dir = peer(&["schema-dir"]).trim().to_string();
    let sample = peer(&["sample"]).trim().to_string();

    let from_rubin = topic("lsst-stream-from");
    let sent = json_lines(&peer(&["produce", &brokers(), &from_rubin]));
    assert!(!sent.is_empty());
    let printed = json_lines(&ok(&[
        "print",
        &from_rubin,
        "-e",
        "-g",
        &from_rubin,
        "--format",
        "confluent",
        "--schema",
        &schema_dir,
    ]));
    assert_eq!(printed.len(), sent.len());
    for (i, (line, want)) in printed.iter().zip(&sent).enumerate() {
        assert_same(line, want, &format!("alert {i} from lsst-alert-stream"));
    }

    let to_rubin = topic("lsst-stream-to");
    ok(&[
        "send",
        &to_rubin,
        "--alerts",
        &sample,
        "--format",
        "confluent",
        "--schema-id",
        "0",
    ]);
    let count = sent.len().to_string();
    let read = json_lines(&peer(&["consume", &brokers(), &to_rubin, &count]));
    assert_eq!(read.len(), sent.len());
    for (i, (line, want)) in read.iter().zip(&sent).enumerate() {
        assert_same(line, want, &format!("alert {i} read by lsst-alert-stream"));
    }
}

/// record and filter take the framing as --wire (their --format is the
/// archive's): a key-schema topic read with --wire key-schema is archived
/// and routed whole, and read with --wire confluent every message is
/// skipped, so the flag is what decides.
#[test]
fn record_and_filter_take_the_framing_as_wire() {
    let topic = topic("key-schema-wire");
    ok(&["send", &topic, "--format", "key-schema"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let logged = |args: &[&str]| {
        let output = run(args);
        assert!(output.status.success(), "{}", stderr(&output));
        stderr(&output)
    };
    for (wire, recorded) in [
        ("key-schema", "recorded 12 alert(s) from 12 message(s)"),
        ("confluent", "recorded 0 alert(s) from 12 message(s)"),
    ] {
        let log = logged(&[
            "record", &topic, "--out", dir, "-e", "--from", "@0", "--wire", wire,
        ]);
        assert!(log.contains(recorded), "--wire {wire}: {log}");
    }
    for (wire, skipped) in [("key-schema", "; 0 skipped"), ("confluent", "; 12 skipped")] {
        let to = format!("{topic}-{wire}");
        let log = logged(&[
            "filter",
            &topic,
            "-e",
            "--from",
            "@0",
            "--wire",
            wire,
            "--where",
            "candidate.magpsf > 0",
            "--to",
            &to,
        ]);
        assert!(log.contains(skipped), "--wire {wire}: {log}");
    }
}
