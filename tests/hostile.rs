//! Hostile input: cutout names that try to escape the stamp folder, alerts
//! larger than Kafka allows, payloads that lie about their lengths. No panic,
//! nothing written outside --stamp-dir, a clear error, and the stream goes on.

mod common;

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
        "h",
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
