//! `--dead-letter TOPIC`: every message print, record and filter do not
//! handle is copied there byte for byte (key, value, headers, timestamp)
//! with the reason in three headers; the good alerts around them are
//! handled as without it.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// An empty --schema-dir: every Confluent schema id is unknown.
static NO_SCHEMAS: std::sync::LazyLock<tempfile::TempDir> =
    std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());

/// Alerts without cutouts are far under this; with them (~50 KB), over it.
const MAX_ALERT_BYTES: &str = "20K";

/// A topic of 3 good alerts (no cutouts), then one of each refused kind, then
/// 2 more good ones. Returns the refused messages as produced, with the
/// reason each should carry.
fn mixed_topic(topic: &str) -> Vec<(RawMessage, &'static str)> {
    ok(&["send", topic, "3", "--no-stamps"]);
    let oversized = alert_with_cutouts(topic);
    let refused: Vec<(RawMessage, &'static str)> = vec![
        (raw(b"", "empty"), "empty"),
        (
            raw(b"\x00\x00\x00\x00\x07not avro", "unknown"),
            "unknown_schema",
        ),
        (raw(b"neither Avro nor framed", "garbage"), "schema"),
        (raw(&oversized, "oversized"), "limit"),
    ];
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (message, _) in &refused {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        producer
            .send(
                BaseRecord::to(topic)
                    .payload(&message.payload)
                    .key(message.key.as_deref().unwrap())
                    .headers(headers)
                    .timestamp(message.timestamp.unwrap()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    ok(&["send", topic, "2", "--no-stamps"]);
    refused
}

/// One message with a key, a header and a timestamp of its own.
fn raw(payload: &[u8], name: &str) -> RawMessage {
    RawMessage {
        partition: 0,
        payload: payload.to_vec(),
        key: Some(format!("key-{name}").into_bytes()),
        headers: vec![("origin".into(), Some(name.as_bytes().to_vec()))],
        timestamp: Some(1_700_000_000_000 + payload.len() as i64),
    }
}

/// The bytes of one sample alert with its cutouts, bare Avro as send writes it.
fn alert_with_cutouts(topic: &str) -> Vec<u8> {
    let scratch = format!("{topic}-scratch");
    ok(&["send", &scratch, "1"]);
    read_committed(&scratch).remove(0).payload
}

/// The dead-letter topic holds exactly the refused messages, unchanged, in
/// order, each with its reason, detail and source headers.
fn assert_dead_letters(
    dead: &[RawMessage],
    refused: &[(RawMessage, &str)],
    topic: &str,
    first_offset: i64,
) {
    assert_eq!(dead.len(), refused.len(), "{dead:#?}");
    for (i, (copy, (original, reason))) in dead.iter().zip(refused).enumerate() {
        assert_eq!(copy.payload, original.payload, "payload {i}");
        assert_eq!(copy.key, original.key, "key {i}");
        assert_eq!(copy.timestamp, original.timestamp, "timestamp {i}");
        assert_eq!(copy.headers[0], original.headers[0], "own header {i}");
        let header = |name: &str| {
            let value = copy.headers.iter().find(|(k, _)| k == name);
            String::from_utf8(value.unwrap().1.clone().unwrap()).unwrap()
        };
        assert_eq!(header("alertstream-error"), *reason, "reason {i}: {copy:?}");
        assert_eq!(
            header("alertstream-source"),
            format!("{topic}/0/{}", first_offset + i as i64)
        );
        assert!(
            header("alertstream-error-detail")
                .contains(&format!("offset {}", first_offset + i as i64)),
            "{}",
            header("alertstream-error-detail")
        );
    }
}

#[test]
fn print_and_record_copy_every_refused_message_unchanged() {
    let topic = topic("dead-letter");
    let refused = mixed_topic(&topic);
    let dead = format!("{topic}-dead");
    let output = run(&[
        "print",
        &topic,
        "-e",
        "-g",
        &topic,
        "--dead-letter",
        &dead,
        "--on-unknown-schema",
        "skip",
        "--schema-dir",
        NO_SCHEMAS.path().to_str().unwrap(),
        "--max-alert-bytes",
        MAX_ALERT_BYTES,
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&output.stdout)).len(),
        5,
        "{log}"
    );
    assert_eq!(
        log.matches(&format!("copied to {dead}")).count(),
        3,
        "{log}"
    );
    assert_eq!(committed_offset(&topic, &topic), 9);
    assert_dead_letters(&read_committed(&dead), &refused, &topic, 3);
    // Re-driven with the cause fixed (the default --max-alert-bytes): the
    // oversized alert now prints, --meta naming where it came from.
    let redriven = json_lines(&ok(&[
        "print",
        &dead,
        "-e",
        "-g",
        &dead,
        "--meta",
        "--on-unknown-schema",
        "skip",
        "--schema-dir",
        NO_SCHEMAS.path().to_str().unwrap(),
    ]));
    assert_eq!(redriven.len(), 1, "{redriven:?}");
    let meta = &redriven[0]["_kafka"]["dead_letter"];
    assert_eq!(meta["error"], "limit");
    assert_eq!(meta["source"], format!("{topic}/0/6"));

    let archive = tempfile::tempdir().unwrap();
    let record_dead = format!("{topic}-record-dead");
    let output = run(&[
        "record",
        &topic,
        "-e",
        "-g",
        &format!("{topic}-record"),
        "--out",
        archive.path().to_str().unwrap(),
        "--dead-letter",
        &record_dead,
        "--on-unknown-schema",
        "skip",
        "--schema-dir",
        NO_SCHEMAS.path().to_str().unwrap(),
        "--max-alert-bytes",
        MAX_ALERT_BYTES,
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("recorded 5 alert(s) from 9 message(s)"),
        "{log}"
    );
    assert_dead_letters(&read_committed(&record_dead), &refused, &topic, 3);
}

/// filter copies refused messages inside its transaction: the output holds
/// the good alerts, the dead-letter topic the refused ones, each once.
#[test]
fn filter_dead_letters_inside_its_transaction() {
    let topic = topic("dead-letter-filter");
    let refused = mixed_topic(&topic);
    let out = format!("{topic}-out");
    let dead = format!("{topic}-dead");
    let output = run(&[
        "filter",
        &topic,
        "--where",
        "candid > 0",
        "--to",
        &out,
        "-e",
        "-g",
        &topic,
        "--dead-letter",
        &dead,
        "--on-unknown-schema",
        "skip",
        "--schema-dir",
        NO_SCHEMAS.path().to_str().unwrap(),
        "--max-alert-bytes",
        MAX_ALERT_BYTES,
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert_eq!(read_committed(&out).len(), 5, "{log}");
    assert_dead_letters(&read_committed(&dead), &refused, &topic, 3);
}

/// The dead-letter topic may not be the input: its copies would be refused
/// again, for ever.
#[test]
fn the_input_cannot_be_its_own_dead_letter_topic() {
    for command in ["print", "record", "filter"] {
        let mut args = vec![command, "some-topic", "--dead-letter", "some-topic"];
        if command == "record" {
            args.extend(["--out", "/nonexistent-never-created"]);
        }
        if command == "filter" {
            args.extend(["--where", "true", "--to", "elsewhere"]);
        }
        let output = run(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{command}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("--dead-letter some-topic is the topic being consumed"),
            "{command}: {}",
            stderr(&output)
        );
    }
    let output = run(&[
        "filter",
        "in",
        "--where",
        "true",
        "--to",
        "out",
        "--dead-letter",
        "out",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("is also a --to topic"));
}

/// A recorder killed inside a copy's transaction leaves it open, holding
/// the group's offsets of that partition: the next recorder's producer for
/// the partition (record's transactional.id, group, topic and partition)
/// aborts it as soon as the partition is assigned, so the restart goes on
/// at once instead of waiting out the transaction (here 15 minutes; the
/// run is bounded by RUN_LIMIT, so a wait fails the test).
#[test]
fn a_copy_left_open_by_a_killed_recorder_is_aborted_at_once() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let topic = topic("dead-letter-open");
    let group = format!("{topic}-group");
    let dead = format!("{topic}-dead");
    ok(&["send", &topic, "3", "--no-stamps"]);
    produce_raw(&topic, &[b"not an alert"]);
    // The killed recorder's open transaction: offsets sent, never committed.
    let stale: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set(
            "transactional.id",
            format!("alertstream-dead-letter-{group}-{topic}-0"),
        )
        .set("transaction.timeout.ms", "900000")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    stale.init_transactions(timeout).unwrap();
    stale.begin_transaction().unwrap();
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(1))
        .unwrap();
    stale
        .send_offsets_to_transaction(&offsets, &member.group_metadata().unwrap(), timeout)
        .unwrap();
    drop(stale);
    drop(member);

    let out = tempfile::tempdir().unwrap();
    let output = run(&[
        "record",
        &topic,
        "--out",
        out.path().to_str().unwrap(),
        "-g",
        &group,
        "-e",
        "--dead-letter",
        &dead,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("recorded 3 alert(s)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(read_committed(&dead).len(), 1);
}
