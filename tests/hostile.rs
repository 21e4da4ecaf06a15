//! Hostile input: cutout names that try to escape the stamp folder, alerts
//! larger than Kafka allows, payloads that lie about their lengths. No panic,
//! nothing written outside --stamp-dir, a clear error, and the stream goes on.

mod common;

use alertstream::avro::container::{write_block, write_header, Codec};
use alertstream::avro::varint::write_long;
use apache_avro::types::Value;
use common::*;

/// The first sample alert with its cutouts renamed.
fn alert_with_file_names(names: [&str; 3]) -> Vec<u8> {
    let mut alert = sample_alerts().remove(0);
    let Value::Record(fields) = &mut alert else {
        panic!()
    };
    let mut names = names.iter();
    for (field, value) in fields.iter_mut() {
        if !field.starts_with("cutout") {
            continue;
        }
        let Value::Union(_, inner) = value else {
            panic!()
        };
        let Value::Record(cutout) = inner.as_mut() else {
            panic!()
        };
        cutout[0].1 = Value::String(names.next().unwrap().to_string());
    }
    alertstream::avro::codec::encode(&alertstream::avro::schema::built_in(), &alert).unwrap()
}

#[test]
fn cutout_names_cannot_escape_the_stamp_dir() {
    let topic = topic("names");
    create_topic(&topic, 1);
    let long = "x".repeat(300);
    let payloads = [
        alert_with_file_names(["../escape.fits.gz", "/tmp/absolute.fits.gz", "a/b.fits.gz"]),
        alert_with_file_names(["", "nul\0byte.fits.gz", &long]),
        alert_with_file_names(["ok-1.fits.gz", "..", "ok-2.fits.gz"]),
    ];
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    produce_raw(&topic, &refs);
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    let output = run(&[
        "print",
        &topic,
        "--group",
        "names-h",
        "-e",
        "--stamp-dir",
        stamps.to_str().unwrap(),
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert_eq!(
        json_lines(&String::from_utf8(output.stdout).unwrap()).len(),
        3,
        "every alert still printed"
    );
    let mut written: Vec<String> = std::fs::read_dir(&stamps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written, ["ok-1.fits.gz", "ok-2.fits.gz"]);
    let outside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        outside,
        ["stamps"],
        "nothing written beside the stamp folder"
    );
    assert!(!std::path::Path::new("/tmp/absolute.fits.gz").exists());
    assert_eq!(log.matches("refused cutout file name").count(), 7, "{log}");
}

#[test]
fn an_alert_larger_than_the_producer_allows_is_refused_before_sending() {
    let topic = topic("toolarge");
    let output = run(&["-X", "message.max.bytes=20000", "send", &topic]);
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(log.contains("message.max.bytes (20000)"), "{log}");
    assert!(!topic_exists(&topic), "nothing sent");
}

/// Simulated alerts are made as they go out: one too large for the
/// producer fails its delivery, and the message names the producer's limit.
#[test]
fn a_simulated_alert_larger_than_the_producer_allows_is_reported_undelivered() {
    let topic = topic("toolarge-sim");
    let output = run(&[
        "-X",
        "message.max.bytes=20000",
        "send",
        &topic,
        "5",
        "--simulate",
        "ztf",
    ]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{log}");
    assert!(log.contains("5 of 5 alert(s) were not delivered"), "{log}");
    assert!(
        log.contains("this producer's message.max.bytes (-X)"),
        "{log}"
    );
}

#[test]
fn an_alert_larger_than_the_topic_allows_is_reported_undelivered() {
    let topic = topic("topiclimit");
    // The broker-side limit is the topic's max.message.bytes.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
    let new = rdkafka::admin::NewTopic::new(&topic, 1, rdkafka::admin::TopicReplication::Fixed(1))
        .set("max.message.bytes", "30000");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(admin.create_topics([&new], &rdkafka::admin::AdminOptions::new()))
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    let output = run(&["send", &topic]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("12 of 12 alert(s) were not delivered"),
        "{log}"
    );
    assert!(log.contains("max.message.bytes"), "{log}");
}

/// A container message holding `raw` (already-encoded objects) in one block.
fn container_message(
    schema: &str,
    codec: Codec,
    extra: &[(&str, &[u8])],
    count: u64,
    data: &[u8],
) -> Vec<u8> {
    let sync = *b"hostile-sync-16b";
    let mut bytes = write_header(schema, codec, extra, &sync);
    write_block(&mut bytes, count, data, &sync);
    bytes
}

/// About 0.9 MB of deflate (one Kafka message) that inflates to 900 MiB of zeros.
fn deflate_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..900 {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.finish().unwrap()
}

/// Issue 9: each of these crashed `print` (exit 101) or took gigabytes.
/// Now each is reported and skipped, the alerts around them are printed, the
/// offsets move on, and peak memory stays under 200 MB.
#[test]
fn hostile_container_messages_are_skipped_in_bounded_memory() {
    let topic = topic("hostile-containers");
    create_topic(&topic, 1);
    let alert = sample_alerts().remove(0);
    let schema = alertstream::avro::schema::built_in();
    let bare = alertstream::avro::codec::encode(&schema, &alert).unwrap();
    let alert_schema = schema.canonical_form();
    // A real alert, zstandard, with an empty compression level: decodes.
    let zstd_empty_level = container_message(
        &alert_schema,
        Codec::Zstandard,
        &[("avro.codec.compression_level", b"")],
        1,
        &Codec::Zstandard.compress(&bare).unwrap(),
    );
    let snappy_short = container_message(&alert_schema, Codec::Snappy, &[], 1, &[0, 1]);
    let mut nulls = Vec::new();
    for _ in 0..64 {
        write_long(&mut nulls, 64 << 20);
    }
    write_long(&mut nulls, 0);
    let null_array = container_message(
        r#"{"type":"array","items":"null"}"#,
        Codec::Null,
        &[],
        1,
        &nulls,
    );
    let bomb = container_message(
        r#"{"type":"record","name":"r","fields":[{"name":"b","type":"bytes"}]}"#,
        Codec::Deflate,
        &[],
        1,
        &deflate_bomb(),
    );
    assert!(bomb.len() < 1_000_000, "the bomb fits in one Kafka message");
    produce_raw(
        &topic,
        &[&zstd_empty_level, &snappy_short, &null_array, &bomb, &bare],
    );
    let (output, peak) = run_measured(&["print", &topic, "--group", "g", "-e"]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let lines = json_lines(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(
        lines,
        vec![expected_json(&alert), expected_json(&alert)],
        "{log}"
    );
    for (offset, why) in [
        (1, "shorter than its 4-byte checksum"),
        (2, "empty items exceeds --max-alert-bytes"),
        (3, "decompresses to more than"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("offset {offset}: cannot decode")))
            .unwrap_or_else(|| panic!("no report of offset {offset}:\n{log}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(log.contains("3 skipped"), "{log}");
    assert!(peak < 200 << 20, "peak RSS {} MB", peak >> 20);
    report(&format!(
        "hostile containers: print peak RSS {} MB",
        peak >> 20
    ));
    // The offsets moved past them: the group does not crash-loop on them.
    assert_eq!(committed_offset("g", &topic), 5);
}

/// `--max-alert-bytes` is the limit: an alert over it is skipped, named.
#[test]
fn max_alert_bytes_skips_larger_alerts() {
    let topic = topic("max-alert-bytes");
    ok(&["send", &topic, "2"]);
    let output = run(&[
        "print",
        &topic,
        "--group",
        "max-bytes-g",
        "-e",
        "--max-alert-bytes",
        "10K",
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(output.stdout.is_empty(), "alerts of ~50 KB are over 10K");
    assert!(log.contains("alert larger than --max-alert-bytes"), "{log}");
    let small = json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        "max-bytes-h",
        "-e",
        "--max-alert-bytes",
        "1M",
    ]));
    assert_eq!(small.len(), 2);
    let bad = run(&["print", &topic, "--max-alert-bytes", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--max-alert-bytes lots"),
        "{}",
        stderr(&bad)
    );
}

/// A string that is not UTF-8 (another producer's alert with one byte of
/// objectId broken) is refused by every command that reads it, Avro
/// archives included: no reader could decode an archive that took it.
#[test]
fn a_string_that_is_not_utf8_is_refused_by_every_reader() {
    let topic = topic("not-utf8");
    let good = alertstream::avro::codec::encode(
        &alertstream::avro::schema::built_in(),
        &sample_alerts().remove(0),
    )
    .unwrap();
    let at = good
        .windows(3)
        .position(|w| w == b"ZTF")
        .expect("an objectId");
    let mut bad = good.clone();
    bad[at + 1] = 0xff;
    produce_raw(&topic, &[&good, &bad, &good]);
    let out = tempfile::tempdir().unwrap();
    for (command, format) in [("print", ""), ("record", "avro"), ("record", "parquet")] {
        let folder = out.path().join(format);
        let folder = folder.to_str().unwrap();
        let group = format!("{command}-{format}");
        let mut args = vec![command, &topic, "-e", "--group", &group];
        if command == "record" {
            args.extend(["--out", folder, "--format", format]);
        }
        let output = run(&args);
        let log = stderr(&output);
        assert!(output.status.success(), "{args:?}: {log}");
        assert!(log.contains("string is not UTF-8"), "{args:?}: {log}");
        assert!(
            log.contains(&format!("{topic} partition 0 offset 1")),
            "{log}"
        );
        assert!(
            log.contains("2 alert(s) from 3 message(s)"),
            "{args:?}: {log}"
        );
    }
}
