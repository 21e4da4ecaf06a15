//! send then print, through the real broker.

mod common;

use common::*;
use flate2::read::GzDecoder;
use std::io::Read;

#[test]
fn print_returns_exactly_the_sent_alerts() {
    let topic = topic("roundtrip");
    ok(&["send", &topic]);
    let lines = json_lines(&ok(&["print", &topic, "--group", "g", "-e"]));
    let expected: Vec<_> = sample_alerts().iter().map(expected_json).collect();
    assert_eq!(lines.len(), expected.len());
    assert_eq!(lines, expected, "printed alerts differ from the source");
    for line in &lines {
        assert!(line["objectId"].is_string() && line["candid"].is_i64());
        assert!(
            line.get("cutoutScience").is_none(),
            "cutouts are left out of the printout"
        );
    }
}

/// An alert that could not be written is not counted as printed, nor its
/// message as read: with stdout on a full device, print fails naming
/// stdout and printed none.
#[test]
fn an_alert_stdout_refused_is_not_counted_as_printed() {
    let topic = topic("stdout-full");
    ok(&["send", &topic, "3"]);
    let output = alertstream()
        .args(["print", &topic, "--group", "g", "-e"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot write to stdout"), "{said}");
    assert!(
        said.contains("printed 0 alert(s) from 0 message(s)"),
        "{said}"
    );
}

#[test]
fn count_larger_than_the_source_reuses_alerts_in_order() {
    let topic = topic("count");
    ok(&["send", &topic, "30"]);
    let lines = json_lines(&ok(&["print", &topic, "--group", "g", "-e"]));
    let source = sample_alerts();
    assert_eq!(lines.len(), 30);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, expected_json(&source[i % source.len()]), "alert {i}");
    }
}

/// A real ZTF 3.3 packet sent as a container (its writer schema with it)
/// prints as written; the built-in reader is 4.02, which bare 3.3 data is not.
#[test]
fn real_ztf_packets_print_as_written() {
    let topic = topic("ztf33");
    let file = ztf_fixtures().join("v3.3_472263571115115000.avro");
    ok(&[
        "send",
        &topic,
        "--alerts",
        file.to_str().unwrap(),
        "--format",
        "container",
    ]);
    let lines = json_lines(&ok(&["print", &topic, "--group", "g", "-e"]));
    let expected: Vec<_> = container_alerts(&file).iter().map(expected_json).collect();
    assert_eq!(lines, expected);
    assert_eq!(lines[0]["candid"], 472263571115115000i64);
}

#[test]
fn stamp_dir_gets_three_valid_fits_files_per_alert() {
    let topic = topic("stamps");
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    ok(&["send", &topic]);
    let lines = json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        "g2",
        "--stamp-dir",
        stamps.to_str().unwrap(),
        "-e",
    ]));
    let mut names: Vec<_> = std::fs::read_dir(&stamps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3 * lines.len(), "{names:?}");
    for line in &lines {
        let candid = line["candid"].as_i64().unwrap();
        let of_alert = names
            .iter()
            .filter(|n| n.starts_with(&format!("candid{candid}_")))
            .count();
        assert_eq!(of_alert, 3, "cutouts of {candid}");
    }
    for name in &names {
        assert!(name.ends_with(".fits.gz"), "{name}");
        let mut fits = Vec::new();
        GzDecoder::new(std::fs::File::open(stamps.join(name)).unwrap())
            .read_to_end(&mut fits)
            .unwrap_or_else(|e| panic!("{name} is not gzip: {e}"));
        assert!(
            fits.starts_with(b"SIMPLE  =                    T"),
            "{name} is not FITS"
        );
        assert_eq!(
            fits.len() % 2880,
            0,
            "{name}: FITS files are 2880-byte blocks"
        );
        let header = String::from_utf8_lossy(&fits[..2880]);
        assert!(header.contains("NAXIS1  =                   63"), "{name}");
        assert!(header.contains("BITPIX  =                  -32"), "{name}");
    }
}

#[test]
fn no_stamps_sends_alerts_without_cutouts() {
    let topic = topic("nostamps");
    let dir = tempfile::tempdir().unwrap();
    ok(&["send", &topic, "--no-stamps"]);
    let lines = json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        "g",
        "--stamp-dir",
        dir.path().to_str().unwrap(),
        "-e",
    ]));
    let expected: Vec<_> = sample_alerts().iter().map(expected_json).collect();
    assert_eq!(lines, expected, "everything but the cutouts arrives");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no cutouts were sent"
    );
}

#[test]
fn encode_off_and_decode_off_carry_json() {
    let topic = topic("json");
    ok(&["send", &topic, "--encode-off"]);
    let lines = json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        "g",
        "--decode-off",
        "-e",
    ]));
    let source = sample_alerts();
    assert_eq!(lines.len(), source.len());
    for (line, alert) in lines.iter().zip(&source) {
        let mut object = line.as_object().unwrap().clone();
        let stamp = object
            .remove("cutoutScience")
            .expect("--encode-off keeps cutouts");
        assert!(stamp["stampData"].as_str().is_some_and(|s| s.len() > 1000));
        object.remove("cutoutTemplate");
        object.remove("cutoutDifference");
        assert_eq!(serde_json::Value::Object(object), expected_json(alert));
    }
}

#[test]
fn repeat_sends_the_given_number_of_visits() {
    let topic = topic("repeat");
    let output = run(&[
        "send",
        &topic,
        "4",
        "--repeat",
        "--interval",
        "0.5",
        "--max-repeats",
        "3",
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    for visit in 1..=3 {
        assert!(
            log.contains(&format!("visit {visit}/3: 4 alert(s) delivered")),
            "visit {visit} not reported:\n{log}"
        );
    }
    assert!(log.contains("12 of 12 alert(s) delivered"), "{log}");
    let lines = json_lines(&ok(&["print", &topic, "--group", "g", "-e"]));
    assert_eq!(lines.len(), 12);
}

#[test]
fn max_messages_stops_early_and_commits() {
    let topic = topic("max");
    ok(&["send", &topic]);
    let first = json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        "g",
        "--max-messages",
        "5",
    ]));
    assert_eq!(first.len(), 5);
    // The same group continues where it stopped: offsets were committed.
    let rest = json_lines(&ok(&["print", &topic, "--group", "g", "-e"]));
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    let expected: Vec<_> = sample_alerts().iter().map(expected_json).collect();
    assert_eq!(all, expected);
}

#[test]
fn send_creates_the_topic_with_the_partitions_asked_for() {
    let topic = topic("partitions");
    ok(&["send", &topic, "--partitions", "3"]);
    let output = run(&["monitor", &topic, "--group", "p", "-e", "--every", "0"]);
    let ends = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        ends.lines().count(),
        3,
        "one end line per partition:\n{ends}"
    );
}

/// The producer's queue is bounded (64 MiB), so send's memory stays flat as
/// the visit grows: peak RSS for 20,000 alerts (about 1.1 GB) within 20% of
/// that for 2,000 (already more than the queue holds).
#[test]
fn send_memory_stays_flat_as_the_visit_grows() {
    let topic = topic("send-memory");
    let (small, small_peak) = run_measured(&["send", &topic, "2000"]);
    assert!(small.status.success(), "{}", stderr(&small));
    let (large, large_peak) = run_measured(&["send", &topic, "20000"]);
    assert!(large.status.success(), "{}", stderr(&large));
    report(&format!(
        "send peak RSS: {} MB for 2,000 alerts, {} MB for 20,000",
        small_peak >> 20,
        large_peak >> 20
    ));
    assert!(
        (large_peak as f64) <= small_peak as f64 * 1.2,
        "{} MB for 20,000 alerts against {} MB for 2,000",
        large_peak >> 20,
        small_peak >> 20
    );
}
