//! Bad input: clear one-line errors, documented exit codes, nothing half-sent.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn unreadable_alerts_path_sends_nothing() {
    let topic = topic("missing");
    let output = run(&["send", &topic, "--alerts", "/nonexistent/alerts.avro"]);
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(log.contains("/nonexistent/alerts.avro"), "{log}");
    assert_eq!(
        log.lines().filter(|l| l.contains("error")).count(),
        1,
        "{log}"
    );
    assert!(!topic_exists(&topic), "nothing may reach the broker");
}

#[test]
fn corrupt_alerts_file_names_file_and_offset_and_sends_nothing() {
    let topic = topic("corrupt");
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(root().join("sample-alerts/visit-1.avro")).unwrap();
    // Two good files and one cut short: none of them may be sent.
    std::fs::write(dir.path().join("a.avro"), &good).unwrap();
    std::fs::write(dir.path().join("b.avro"), &good[..good.len() - 20_000]).unwrap();
    std::fs::write(dir.path().join("c.avro"), &good).unwrap();
    let output = run(&["send", &topic, "--alerts", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(log.contains("b.avro") && log.contains("byte"), "{log}");
    assert!(!topic_exists(&topic), "nothing may reach the broker");
}

#[test]
fn corrupt_messages_are_reported_and_skipped() {
    let topic = topic("garbage");
    create_topic(&topic, 1);
    let good = {
        // One valid alert as send would encode it.
        ok(&["send", &topic, "1"]);
        json_lines(&ok(&["print", &topic, "--group", "peek", "-e"]))
    };
    produce_raw(&topic, &[b"\x06not an alert at all", b"", &[0xff; 64]]);
    ok(&["send", &topic, "1"]);
    let output = run(&["print", &topic, "--group", "reader", "-e"]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let lines = json_lines(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(
        lines,
        vec![good[0].clone(), good[0].clone()],
        "the valid alerts around the bad ones"
    );
    assert!(log.contains("partition 0 offset 1: cannot decode"), "{log}");
    assert!(
        log.contains("partition 0 offset 2: cannot decode (empty message)"),
        "{log}"
    );
    assert!(log.contains("partition 0 offset 3: cannot decode"), "{log}");
    assert!(log.contains("3 skipped"), "{log}");
}

#[test]
fn unreachable_broker_fails_fast_naming_it() {
    for command in [
        vec!["send", "t3"],
        vec!["print", "t3", "-e"],
        vec!["monitor", "t3", "-e"],
    ] {
        let mut args = vec!["-b", "127.0.0.1:1"];
        args.extend(&command);
        let start = Instant::now();
        let child = alertstream()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let output = wait_with_limit(child, Duration::from_secs(15));
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{command:?} took {:?}",
            start.elapsed()
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "{command:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("127.0.0.1:1"),
            "{command:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn unknown_kafka_property_is_named() {
    let output = run(&["-X", "no.such.property=1", "send", &topic("prop")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no.such.property"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_options_are_rejected_before_connecting() {
    for (args, needle) in [
        (
            vec!["send", "t", "--repeat", "--interval", "0"],
            "--interval",
        ),
        (vec!["send", "bad topic"], "invalid topic name"),
        (vec!["send", "t", "0"], "COUNT"),
        (
            vec!["print", "t", "--schema", "/nonexistent.avsc"],
            "/nonexistent.avsc",
        ),
        // A window's end, or filter's output topic: said which is meant.
        (
            vec!["record", "t", "--out", "/nonexistent/out", "--to", "now"],
            "give --until TIME",
        ),
        // An archive has no end to wait for and no offsets to start from.
        (
            vec!["view", "--archive", "/nonexistent/out", "-e"],
            "--exit-at-end",
        ),
        (
            vec!["view", "--archive", "/nonexistent/out", "--from", "-1h"],
            "--from",
        ),
        (
            vec!["view", "--archive", "/nonexistent/out", "--group", "g"],
            "--group",
        ),
        // Nothing to show: the folder a newcomer may have is named too.
        (vec!["view"], "--archive DIR"),
    ] {
        let mut all = vec!["-b", "127.0.0.1:1"];
        all.extend(&args);
        let output = run(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(needle),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

/// A folder with no archive in it fails before the page is announced: no
/// address is given for a page that is not going to stay up.
#[test]
fn view_of_a_folder_with_no_archive_fails_before_announcing_a_page() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let output = run(&["view", "--archive", dir, "--listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(log.contains("no .avro or .parquet files"), "{log}");
    assert!(!log.contains("view on http"), "{log}");
}

/// A recorder that cannot reach its brokers fails naming them (exit 1)
/// and leaves nothing behind: no --out folder, no claim in it.
#[test]
fn record_that_cannot_reach_its_brokers_leaves_no_folder() {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("archive");
    let output = run(&[
        "-b",
        "127.0.0.1:1",
        "record",
        "t",
        "--out",
        out.to_str().unwrap(),
        "--broker-timeout",
        "1",
    ]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("127.0.0.1:1"), "{log}");
    assert!(
        !out.exists(),
        "--out created by a recorder that never started"
    );
}

/// A folder another group claimed is refused before the brokers are
/// tried: exit 2 for the folder (not 1 for unreachable brokers), for a
/// group run and a time window alike, and the claim is left as it was.
#[test]
fn record_refuses_a_folder_claimed_by_another_group_before_reaching_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join(".t.group"), "other\n").unwrap();
    for (run_in, needle) in [
        (["-g", "mine"], "record group mine into another folder"),
        (
            ["--from", "-1h"],
            "record the time window into another folder",
        ),
    ] {
        let mut args = vec!["-b", "127.0.0.1:1", "record", "t", "--out", out];
        args.extend(run_in);
        args.extend(["--broker-timeout", "30"]);
        let output = run(&args);
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{run_in:?}: {log}");
        assert!(log.contains(needle), "{run_in:?}: {log}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".t.group")).unwrap(),
        "other\n"
    );
}

/// The tip naming --archive is for a view with nothing to show, not for
/// any other missing argument.
#[test]
fn view_tip_names_archive_only_when_nothing_is_shown() {
    let output = run(&["view", "t", "--registry-cache", "/nonexistent"]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(log.contains("--schema-registry"), "{log}");
    assert!(!log.contains("--archive DIR"), "{log}");
}
