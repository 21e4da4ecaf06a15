//! Real alert packets in every wire framing, checked value for value against
//! an independent implementation: Python's fastavro and confluent-kafka (the
//! original's stack), run from `tests/peer/alert_peer.py`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value as Json;

const FRAMINGS: [&str; 4] = ["schemaless", "container", "confluent", "key-schema"];

/// Runs the Python peer and returns its stdout.
fn peer(args: &[&str]) -> String {
    python_script("alert_peer.py", args)
}

/// fastavro's reading of container files, as JSON values.
fn fastavro_reading(files: &[PathBuf]) -> Vec<Json> {
    let mut args = vec!["decode"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    json_lines(&peer(&args))
}

/// The writer schema of a container file, saved as an .avsc file.
fn writer_schema(file: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(format!(
        "{}.avsc",
        file.file_stem().unwrap().to_string_lossy()
    ));
    peer(&["schema", file.to_str().unwrap(), out.to_str().unwrap()]);
    out
}

fn send_args<'a>(topic: &'a str, framing: &'a str) -> Vec<&'a str> {
    let mut args = vec!["send", topic, "--format", framing];
    if framing == "confluent" {
        args.extend(["--schema-id", "42"]);
    }
    args
}

/// `print -e`, with a reader schema for the framings that carry none.
fn print_all(topic: &str, framing: &str, schema: &Path) -> Vec<Json> {
    let mut args = vec!["print", topic, "--group", "check", "-e"];
    if framing != "container" && framing != "key-schema" {
        args.extend(["--schema", schema.to_str().unwrap()]);
    }
    json_lines(&ok(&args))
}

fn fixtures_by_version() -> BTreeMap<String, Vec<PathBuf>> {
    let mut by_version: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(ztf_fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "avro") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let version = name.split('_').next().unwrap().to_string();
            by_version.entry(version).or_default().push(path);
        }
    }
    for files in by_version.values_mut() {
        files.sort();
    }
    assert_eq!(by_version.values().map(Vec::len).sum::<usize>(), 20);
    by_version
}

#[test]
fn every_ztf_packet_in_every_framing_equals_fastavro() {
    let dir = tempfile::tempdir().unwrap();
    let by_version = fixtures_by_version();
    std::thread::scope(|scope| {
        for (version, files) in &by_version {
            let dir = dir.path();
            scope.spawn(move || {
                let expected = fastavro_reading(files);
                let schema = writer_schema(&files[0], dir);
                for framing in FRAMINGS {
                    let topic = topic(&format!("ztf-{version}-{framing}"));
                    let mut args = send_args(&topic, framing);
                    for file in files {
                        args.extend(["--alerts", file.to_str().unwrap()]);
                    }
                    ok(&args);
                    let printed = print_all(&topic, framing, &schema);
                    assert_eq!(printed.len(), expected.len(), "{version} {framing}");
                    for (i, (p, e)) in printed.iter().zip(&expected).enumerate() {
                        assert_same(p, e, &format!("{version} {framing} alert {i}"));
                    }
                }
            });
        }
    });
}

#[test]
fn python_peer_reads_what_alertstream_sends() {
    let dir = tempfile::tempdir().unwrap();
    let files = &fixtures_by_version()["v3.2"];
    let expected = fastavro_reading(files);
    let schema = writer_schema(&files[0], dir.path());
    for framing in FRAMINGS {
        let topic = topic(&format!("to-python-{framing}"));
        let mut args = send_args(&topic, framing);
        for file in files {
            args.extend(["--alerts", file.to_str().unwrap()]);
        }
        ok(&args);
        let count = expected.len().to_string();
        let read = json_lines(&peer(&[
            "consume",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--format",
            framing,
            "--schema",
            schema.to_str().unwrap(),
            "--count",
            &count,
        ]));
        assert_eq!(
            read, expected,
            "fastavro reading alertstream's {framing} stream"
        );
    }
}

#[test]
fn alertstream_reads_what_the_python_peer_sends() {
    let dir = tempfile::tempdir().unwrap();
    let files = &fixtures_by_version()["v3.1"];
    let expected = fastavro_reading(files);
    let schema = writer_schema(&files[0], dir.path());
    for framing in FRAMINGS {
        let topic = topic(&format!("from-python-{framing}"));
        let brokers = brokers();
        let mut args = vec![
            "produce",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--format",
            framing,
        ];
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(names.iter().map(String::as_str));
        peer(&args);
        assert_eq!(
            print_all(&topic, framing, &schema),
            expected,
            "alertstream reading Python's {framing} stream"
        );
    }
}

#[test]
fn rubin_style_alerts_with_bytes_cutouts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rubin.avro");
    peer(&[
        "write-rubin",
        file.to_str().unwrap(),
        "--count",
        "3",
        "--codec",
        "deflate",
    ]);
    let expected = fastavro_reading(std::slice::from_ref(&file));
    assert_eq!(expected[0]["prvDiaSources"][0]["psfFlux"], "NaN");
    let schema = writer_schema(&file, dir.path());
    for framing in FRAMINGS {
        let topic = topic(&format!("rubin-{framing}"));
        let mut args = send_args(&topic, framing);
        args.extend(["--alerts", file.to_str().unwrap()]);
        ok(&args);
        assert_eq!(print_all(&topic, framing, &schema), expected, "{framing}");
    }

    // Bare-bytes cutouts are named from the diaSourceId and the field.
    let stamp_topic = topic("rubin-stamps");
    ok(&[
        "send",
        &stamp_topic,
        "--format",
        "container",
        "--alerts",
        file.to_str().unwrap(),
    ]);
    let stamps = dir.path().join("stamps");
    ok(&[
        "print",
        &stamp_topic,
        "--group",
        "s",
        "-e",
        "--stamp-dir",
        stamps.to_str().unwrap(),
    ]);
    let with_stamps = json_lines(&peer(&["decode", "--stamps", file.to_str().unwrap()]));
    let mut written = 0;
    for alert in &with_stamps {
        let id = alert["diaSource"]["diaSourceId"].as_i64().unwrap();
        for field in ["cutoutDifference", "cutoutScience", "cutoutTemplate"] {
            let path = stamps.join(format!("{id}_{field}.fits"));
            match alert[field].as_str() {
                Some(b64) => {
                    use base64::Engine;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap();
                    assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
                    written += 1;
                }
                None => assert!(
                    !path.exists(),
                    "{} written for a null cutout",
                    path.display()
                ),
            }
        }
    }
    assert_eq!(std::fs::read_dir(&stamps).unwrap().count(), written);

    // --no-stamps nulls bytes cutouts too.
    let bare_topic = topic("rubin-nostamps");
    ok(&[
        "send",
        &bare_topic,
        "--no-stamps",
        "--format",
        "container",
        "--alerts",
        file.to_str().unwrap(),
    ]);
    let empty = dir.path().join("empty");
    ok(&[
        "print",
        &bare_topic,
        "--group",
        "s",
        "-e",
        "--stamp-dir",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn container_files_in_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let source = ztf_fixtures().join("v3.3_472263571115115000.avro");
    let expected_one = fastavro_reading(std::slice::from_ref(&source));
    for codec in ["null", "deflate", "snappy", "zstandard"] {
        let file = dir.path().join(format!("{codec}.avro"));
        peer(&[
            "recode",
            source.to_str().unwrap(),
            file.to_str().unwrap(),
            "--codec",
            codec,
            "--repeat",
            "3",
        ]);
        let topic = topic(&format!("codec-{codec}"));
        // Sent as containers: their ZTF 3.3 writer schema travels with them.
        ok(&[
            "send",
            &topic,
            "--alerts",
            file.to_str().unwrap(),
            "--format",
            "container",
        ]);
        let printed = json_lines(&ok(&["print", &topic, "--group", "c", "-e"]));
        assert_eq!(printed.len(), 3, "{codec}");
        for p in &printed {
            assert_eq!(*p, expected_one[0], "{codec}");
        }
    }
}

#[test]
fn older_alerts_resolve_to_a_newer_reader_schema() {
    let file = ztf_fixtures().join("v3.0_472263571115115000.avro");
    let topic = topic("resolve");
    ok(&[
        "send",
        &topic,
        "--format",
        "container",
        "--alerts",
        file.to_str().unwrap(),
    ]);
    let schemas = root().join("schemas");
    let printed = json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        "r",
        "-e",
        "--schema",
        schemas.to_str().unwrap(),
    ]));
    // fastavro resolving the same file to the same schema files.
    let avsc: Vec<String> = ["cutout", "candidate", "prv_candidate", "fp_hist", "alert"]
        .iter()
        .map(|n| schemas.join(format!("{n}.avsc")).display().to_string())
        .collect();
    let mut args = vec!["decode", file.to_str().unwrap(), "--reader-schema"];
    args.extend(avsc.iter().map(String::as_str));
    let expected = json_lines(&peer(&args)).remove(0);
    // Fields ZTF added in 3.3 arrive at their defaults.
    let candidate = &printed[0]["candidate"];
    assert_eq!(candidate["drb"], Json::Null);
    assert_eq!(candidate["exptime"], Json::Null);
    assert_eq!(candidate["drbversion"], "");
    assert_same(
        &printed[0],
        &expected,
        "v3.0 alert read with the 3.3 layout",
    );
    assert_eq!(printed.len(), 1);
}

#[test]
fn bad_framing_and_wrong_schema_are_reported_per_message() {
    let topic = topic("badframes");
    create_topic(&topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let rubin = dir.path().join("rubin.avro");
    peer(&["write-rubin", rubin.to_str().unwrap(), "--count", "1"]);
    // offset 0: container magic then junk; 1: Confluent header, truncated alert.
    produce_raw(
        &topic,
        &[b"Obj\x01\x04junkjunkjunk", &[0, 0, 0, 0, 42, 6, b'3']],
    );
    // offset 2: a Rubin alert, bare, which the built-in (ZTF) schema cannot read.
    ok(&["send", &topic, "--alerts", rubin.to_str().unwrap()]);
    // offset 3: a good alert.
    ok(&["send", &topic, "1"]);
    let output = run(&["print", &topic, "--group", "b", "-e"]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let lines = json_lines(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(lines.len(), 1, "only the good alert is printed");
    assert_eq!(lines[0], expected_json(&sample_alerts()[0]));
    for offset in 0..3 {
        assert!(
            log.contains(&format!("partition 0 offset {offset}: cannot decode")),
            "offset {offset}:\n{log}"
        );
    }
    assert!(log.contains("first bytes 4f626a01"), "{log}");
    assert!(log.contains("3 skipped"), "{log}");
}
