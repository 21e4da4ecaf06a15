//! Record, replay and time windows on the real broker: archives read back by
//! fastavro and pyarrow, a window that selects one visit of three, replay
//! gaps and --speed, a recorder killed with -9 and restarted, a full disk,
//! corrupt archives.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(ztf_fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    files.sort();
    files
}

/// Every ZTF fixture (7 schema versions), sent as container messages.
fn send_fixtures(topic: &str) {
    let mut args = vec!["send", topic, "--format", "container"];
    let files = fixtures();
    for file in &files {
        args.extend(["--alerts", file.to_str().unwrap()]);
    }
    ok(&args);
}

#[test]
fn avro_archives_keep_every_alert_as_sent() {
    let topic = topic("record-avro");
    let group = format!("{topic}-group");
    send_fixtures(&topic);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    ok(&[
        "record", &topic, "--out", dir, "-e", "--group", &group, "--codec", "deflate",
    ]);
    let files = fixtures();
    let mut args = vec!["avro-equal", dir];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    assert_eq!(python_script("archive_check.py", &args).trim(), "ok 20");
    // One file per schema version, each with its sidecar.
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".avro")).count(),
        7,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".kafka.jsonl")).count(),
        7
    );
    let (claim, lock) = (format!(".{topic}.group"), format!(".{topic}.lock"));
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('.') || *n == claim || *n == lock),
        "no temporary files left: {names:?}"
    );
    assert_eq!(committed_offset(&group, &topic), 20);
}

#[test]
fn parquet_archives_keep_avro_types() {
    let topic = topic("record-parquet");
    send_fixtures(&topic);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        dir,
        "-e",
        "--format",
        "parquet",
        "--codec",
        "zstandard",
    ]);
    let files: Vec<serde_json::Value> = python_script("archive_check.py", &["parquet", dir])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(files.len(), 7, "one file per schema version");
    let date = alertstream::time::utc_date(alertstream::time::now_ms());
    let mut candids = Vec::new();
    for file in &files {
        assert!(
            file["path"]
                .as_str()
                .unwrap()
                .starts_with(&format!("date={date}/")),
            "{file}"
        );
        let types = &file["types"];
        assert_eq!(types["candid"]["type"], "int64");
        assert_eq!(types["candid"]["nullable"], false);
        assert_eq!(types["objectId"]["type"], "string");
        assert!(types["candidate"]["type"]
            .as_str()
            .unwrap()
            .starts_with("struct<"));
        assert!(types["prv_candidates"]["type"]
            .as_str()
            .unwrap()
            .starts_with("list<item: struct<"));
        assert!(types["cutoutScience"]["type"]
            .as_str()
            .unwrap()
            .contains("stampData: binary"));
        assert_eq!(types["candidate.rb"]["type"], "float");
        assert_eq!(types["candidate.rb"]["nullable"], true);
        candids.extend(
            file["candids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_i64().unwrap()),
        );
    }
    // The same values fastavro reads from the sources.
    let mut expected: Vec<i64> = fixtures()
        .iter()
        .flat_map(|f| container_alerts(f))
        .map(|a| expected_json(&a)["candid"].as_i64().unwrap())
        .collect();
    candids.sort();
    expected.sort();
    assert_eq!(candids, expected);
    // --no-stamps leaves the cutouts out.
    let lean = tempfile::tempdir().unwrap();
    let lean_dir = lean.path().to_str().unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        lean_dir,
        "-e",
        "--format",
        "parquet",
        "--no-stamps",
        "-g",
        "lean",
    ]);
    let first: serde_json::Value = serde_json::from_str(
        python_script("archive_check.py", &["parquet", lean_dir])
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(first["types"].get("cutoutScience").is_none(), "{first}");
    // Uncompressed (the default), the cutouts go into the file straight
    // from the shredded buffers: pyarrow reads each one as fastavro reads
    // the source.
    let plain = tempfile::tempdir().unwrap();
    let plain_dir = plain.path().to_str().unwrap();
    ok(&[
        "record", &topic, "--out", plain_dir, "-e", "--format", "parquet", "-g", "plain",
    ]);
    let sources: Vec<String> = fixtures()
        .iter()
        .map(|f| f.to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["parquet-stamps", plain_dir];
    args.extend(sources.iter().map(String::as_str));
    let checked = python_script("archive_check.py", &args);
    assert_eq!(checked.trim(), format!("ok {}", expected.len()));
}

/// `(visit, broker timestamp)` of every message, from print --meta.
fn visit_times(topic: &str) -> Vec<(u64, i64)> {
    json_lines(&ok(&["print", topic, "--meta", "-e", "--group", "times"]))
        .iter()
        .map(|l| {
            (
                l["_kafka"]["visit"].as_u64().unwrap(),
                l["_kafka"]["timestamp"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Three visits of four alerts, a second apart.
fn three_visits(topic: &str) -> Vec<(u64, i64)> {
    ok(&[
        "send",
        topic,
        "4",
        "--no-stamps",
        "--repeat",
        "--interval",
        "1",
        "--max-repeats",
        "3",
    ]);
    visit_times(topic)
}

#[test]
fn a_time_window_selects_exactly_one_visit() {
    let topic = topic("window");
    let times = three_visits(&topic);
    // Visits are numbered by their tick on the wall clock (--interval 1: the
    // second they start in), so another run never repeats a number.
    let visits: std::collections::BTreeSet<u64> = times.iter().map(|(v, _)| *v).collect();
    let visits: Vec<u64> = visits.into_iter().collect();
    assert_eq!(visits.len(), 3, "{times:?}");
    assert_eq!(visits[2] - visits[0], 2, "consecutive ticks: {visits:?}");
    let first_of = |visit| {
        times
            .iter()
            .filter(|(v, _)| *v == visit)
            .map(|(_, t)| *t)
            .min()
            .unwrap()
    };
    assert_eq!(
        first_of(visits[0]) as u64 / 1000,
        visits[0],
        "the tick's second"
    );
    let (second, third) = (visits[1], visits[2]);
    let (from, until) = (
        format!("@{}", first_of(second)),
        format!("@{}", first_of(third)),
    );
    let lines = json_lines(&ok(&[
        "print", &topic, "--meta", "--from", &from, "--until", &until,
    ]));
    assert_eq!(lines.len(), 4, "one visit");
    assert!(lines.iter().all(|l| l["_kafka"]["visit"] == second));
    // The same window as RFC 3339 text, and for record.
    let rfc = |ms: i64| alertstream::time::rfc3339_utc(ms);
    let out = tempfile::tempdir().unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        out.path().to_str().unwrap(),
        "--from",
        &rfc(first_of(second)),
        "--until",
        &rfc(first_of(third)),
    ]);
    let archived = alertstream::alerts::source::load(&[out.path().to_path_buf()]).unwrap();
    assert_eq!(archived.len(), 4);
    // A window reads outside any group: it commits nothing.
    assert_eq!(
        committed_offset(
            &alertstream::kafka::consumer::group_or_default(None).unwrap(),
            &topic
        ),
        -1
    );
    // filter routes the same window, again each time it runs, and commits
    // no offsets to its group either.
    let (routed, group) = (format!("{topic}-routed"), format!("{topic}-filter"));
    for run in 1..=2 {
        ok(&[
            "filter",
            &topic,
            "--group",
            &group,
            "--from",
            &from,
            "--until",
            &until,
            "--where",
            "candid > 0",
            "--to",
            &routed,
        ]);
        let messages = read_committed(&routed);
        assert_eq!(messages.len(), 4 * run, "run {run}");
        assert!(messages
            .iter()
            .all(|m| m.headers.iter().any(|(k, v)| k == "alertstream-visit"
                && v.as_deref() == Some(second.to_string().as_bytes()))));
    }
    assert_eq!(committed_offset(&group, &topic), -1);
    // Nor to the private group a window is read with (librdkafka's
    // assign() needs a group id).
    for private in groups_named("alertstream-private-") {
        assert_eq!(committed_offset(&private, &topic), -1, "{private}");
    }
    // A window with no messages ends at once, saying so.
    let empty = run(&["print", &topic, "--from", "@1000", "--until", "@2000"]);
    assert!(empty.status.success());
    assert!(empty.stdout.is_empty());
    assert!(
        stderr(&empty).contains("no messages on"),
        "{}",
        stderr(&empty)
    );
    // A time that does not parse: exit 2 naming the accepted forms.
    let bad = run(&["print", &topic, "--from", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}

#[test]
fn replay_keeps_the_recorded_gaps_divided_by_speed() {
    let topic = topic("replay-source");
    three_visits(&topic);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    ok(&["record", &topic, "--out", dir, "-e"]);
    let recorded: Vec<i64> = alertstream::alerts::source::load(&[out.path().to_path_buf()])
        .unwrap()
        .iter()
        .map(|a| a.meta.as_ref().unwrap().timestamp.unwrap())
        .collect();
    let replayed = format!("{topic}-fast");
    ok(&[
        "send", &replayed, "--alerts", dir, "--pace", "recorded", "--speed", "4",
    ]);
    let lines = json_lines(&ok(&["print", &replayed, "--meta", "-e", "--group", "r"]));
    assert_eq!(lines.len(), 12);
    let start = lines[0]["_kafka"]["timestamp"].as_i64().unwrap();
    for (line, at) in lines.iter().zip(&recorded) {
        let planned = (at - recorded[0]) as f64 / 4.0;
        let sent = (line["_kafka"]["timestamp"].as_i64().unwrap() - start) as f64;
        // Never early; late by no more than scheduling noise.
        assert!(
            sent >= planned - 5.0 && sent <= planned + 250.0,
            "planned {planned} ms, sent at {sent} ms"
        );
        // The recorded headers travel with the alert.
        assert!(line["_kafka"]["visit"].as_u64().is_some());
    }
    report(&format!(
        "replay --speed 4: {} alerts over {} ms (recorded span {} ms)",
        lines.len(),
        lines[11]["_kafka"]["timestamp"].as_i64().unwrap() - start,
        recorded[11] - recorded[0]
    ));
}

/// (partition, offset) of every archived alert, from the sidecars.
fn archived_offsets(dir: &Path) -> HashMap<(i32, i64), usize> {
    let mut seen = HashMap::new();
    for alert in alertstream::alerts::source::load(&[dir.to_path_buf()]).unwrap() {
        let meta = alert.meta.unwrap();
        *seen.entry((meta.partition, meta.offset)).or_insert(0) += 1;
    }
    seen
}

#[test]
fn a_recorder_killed_and_restarted_archives_every_alert_exactly_once() {
    let topic = topic("record-kill");
    let group = format!("{topic}-group");
    let dead = format!("{topic}-dead");
    create_topic(&topic, 2);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let send = spawn(&[
        "send",
        &topic,
        "300",
        "--no-stamps",
        "--repeat",
        "--interval",
        "0.5",
        "--max-repeats",
        "8",
    ]);
    // Undecodable messages among the alerts, before and after the kill:
    // each copy commits its offset in one transaction, so none is lost or
    // copied twice (the filter test's claim, for record).
    let garbage: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("garbage-{i}").into_bytes())
        .collect();
    let (before, after) = garbage.split_at(20);
    fn slices(part: &[Vec<u8>]) -> Vec<&[u8]> {
        part.iter().map(Vec::as_slice).collect()
    }
    // A short session, so that the killed recorder leaves the group soon.
    let recorder = spawn(&[
        "record",
        &topic,
        "--out",
        dir,
        "--group",
        &group,
        "--roll-alerts",
        "1000",
        "--dead-letter",
        &dead,
        "-X",
        "session.timeout.ms=6000",
    ]);
    let mut log = Vec::new();
    send.wait_stderr("visit 2", |l| l.contains("visit 2/8: sending"), &mut log);
    produce_raw(&topic, &slices(before));
    // Killed once the first copies are made, with the files around them
    // still open (--roll-alerts 1000): without the copies' own commits,
    // the restart would read them again and copy them twice.
    let mut copied = 0;
    let mut seen = Vec::new();
    recorder.wait_stderr(
        "the first 20 copies",
        |l| {
            copied += usize::from(l.contains("copied to"));
            copied == 20
        },
        &mut seen,
    );
    signal(recorder.child.id(), "KILL");
    let _ = recorder.wait();
    send.wait_stderr("visit 6", |l| l.contains("visit 6/8: sending"), &mut log);
    produce_raw(&topic, &slices(after));
    let (status, _, _) = send.wait();
    assert!(status.success());
    wait_until_group_is_empty(&group);
    let output = run(&[
        "record",
        &topic,
        "--out",
        dir,
        "--group",
        &group,
        "--roll-alerts",
        "1000",
        "--dead-letter",
        &dead,
        "-e",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut dead_letters: Vec<Vec<u8>> = read_committed(&dead)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    dead_letters.sort();
    let mut expected = garbage.clone();
    expected.sort();
    assert_eq!(
        dead_letters, expected,
        "each undecodable message dead-lettered once"
    );
    let seen = archived_offsets(out.path());
    let duplicated: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(seen.len(), 2400, "every alert archived");
    assert_eq!(duplicated, 0, "none twice");
    let (claim, lock) = (format!(".{topic}.group"), format!(".{topic}.lock"));
    let leftovers: Vec<String> = file_names(out.path())
        .into_iter()
        .filter(|n| n.starts_with('.') && *n != claim && *n != lock)
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    report(&format!(
        "record killed -9 and restarted: 2400 sent, {} archived, {duplicated} duplicated; {}",
        seen.len(),
        stderr(&output)
            .lines()
            .find(|l| l.contains("uncommitted"))
            .unwrap_or("nothing to remove")
    ));
}

#[test]
fn a_full_disk_stops_record_and_commits_only_what_is_on_disk() {
    let topic = topic("record-full");
    let group = format!("{topic}-group");
    ok(&["send", &topic]);
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("archive");
    std::fs::create_dir_all(&dir).unwrap();
    {
        let mounted = mount_tmpfs(&dir, "size=256k");
        let output = run(&[
            "record",
            &topic,
            "--out",
            dir.to_str().unwrap(),
            "-g",
            &group,
            "-e",
            "--roll-alerts",
            "2",
        ]);
        // Nothing half-written stays, and the summary counts only the
        // files completed.
        let names = file_names(&dir);
        drop(mounted);
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{log}");
        assert!(log.contains("No space left on device"), "{log}");
        assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
        let completed = names.iter().filter(|n| n.ends_with(".avro")).count();
        assert!(log.contains(&format!("into {completed} file(s)")), "{log}");
    }
    // What was committed is what was on the (now gone) disk: files of 2
    // alerts, so an even offset below 12, and the group re-reads the rest.
    let committed = committed_offset(&group, &topic);
    assert!(
        (0..12).contains(&committed) && committed % 2 == 0,
        "committed {committed}"
    );
    ok(&[
        "record",
        &topic,
        "--out",
        dir.to_str().unwrap(),
        "-g",
        &group,
        "-e",
        "--roll-alerts",
        "2",
    ]);
    let seen = archived_offsets(&dir);
    assert_eq!(seen.len() as i64, 12 - committed.max(0));
    assert!(seen.keys().all(|(_, o)| *o >= committed));
}

#[test]
fn corrupt_archives_are_named_with_the_byte_offset_before_anything_is_sent() {
    let topic = topic("record-corrupt");
    ok(&["send", &topic, "3"]);
    let out = tempfile::tempdir().unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        out.path().to_str().unwrap(),
        "-e",
    ]);
    let file = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "avro"))
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1000]).unwrap();
    let target = format!("{topic}-replay");
    let output = run(&[
        "send",
        &target,
        "--alerts",
        out.path().to_str().unwrap(),
        "--pace",
        "recorded",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(
        log.contains(file.file_name().unwrap().to_str().unwrap()) && log.contains("at byte"),
        "{log}"
    );
    assert!(!topic_exists(&target), "nothing sent");
    // A sidecar that does not match its file is refused too.
    std::fs::write(&file, &bytes).unwrap();
    let sidecar = file.with_file_name(format!(
        "{}.kafka.jsonl",
        file.file_name().unwrap().to_str().unwrap()
    ));
    let lines = std::fs::read_to_string(&sidecar).unwrap();
    std::fs::write(&sidecar, lines.lines().next().unwrap()).unwrap();
    let output = run(&[
        "send",
        &target,
        "--alerts",
        out.path().to_str().unwrap(),
        "--pace",
        "recorded",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not this file's sidecar"),
        "{}",
        stderr(&output)
    );
}

/// On a terminal (script(1) gives record a pseudo-terminal), record's bar
/// shows the alerts archived, a whole-number rate and the messages left,
/// counting down as it reads. One alert a record batch and a fetch, so
/// that the read spans several of the bar's draws 100 ms apart: read
/// whole, 3,000 alerts took less than one on a warm broker.
#[test]
fn on_a_terminal_record_shows_its_rate_and_what_is_left() {
    let topic = topic("record-bar");
    ok(&["-X", "batch.num.messages=1", "send", &topic, "3000"]);
    let out = tempfile::tempdir().unwrap();
    let command = format!(
        "{} -X max.partition.fetch.bytes=1 record {topic} --out {} -e -g {topic}",
        env!("CARGO_BIN_EXE_alertstream"),
        out.path().display()
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("ALERTSTREAM_BROKERS", brokers())
        .env_remove("RUST_LOG")
        .output()
        .expect("script(1) from util-linux");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    let draws: Vec<&str> = screen
        .split(['\r', '\n'])
        .filter(|d| d.contains(" alerts archived ("))
        .collect();
    assert!(!draws.is_empty(), "no bar drawn:\n{screen}");
    let rate = number_between(draws[draws.len() - 1], "archived (", "/s)");
    let last = draws[draws.len() - 1];
    let count = last[..last.find(" alerts archived").unwrap()]
        .split_whitespace()
        .last()
        .unwrap_or("");
    assert!(
        count.len() > 3 && count.contains(',') && count.replace(',', "").parse::<u64>().is_ok(),
        "the count in thousands: {last}"
    );
    assert!(
        rate.is_some(),
        "a whole-number rate: {}",
        draws[draws.len() - 1]
    );
    let left: Vec<u64> = draws
        .iter()
        .filter_map(|d| number_between(d, ") ", " left"))
        .collect();
    assert!(
        left.iter().any(|n| *n > 0),
        "no count of what is left:\n{draws:?}"
    );
    assert!(
        left.windows(2).all(|w| w[1] <= w[0]),
        "what is left only goes down: {left:?}"
    );
    let mut counts = left.clone();
    counts.dedup();
    assert!(
        counts.len() >= 3,
        "what is left moves as record reads: {left:?}"
    );
}

/// The number (digits and thousands commas) between `before` and `after` in `text`.
/// A small file system of its own at `dir` (tests run as root), with mount
/// `options`; unmounted when the guard goes, also when a test fails.
fn mount_tmpfs(dir: &Path, options: &str) -> Mounted {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "mount -o {options} {}", dir.display());
    Mounted(dir.to_path_buf())
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.0).status();
        if !status.is_ok_and(|s| s.success()) && !std::thread::panicking() {
            panic!("cannot unmount {}", self.0.display());
        }
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A group's start removes its uncommitted files from its folder, so the
/// folder is the first group's: another group, or a time window, is
/// refused there, and files no group has claimed are not removed.
#[test]
fn an_archive_folder_is_one_groups() {
    let topic = topic("record-claim");
    ok(&["send", &topic, "3"]);
    let base = tempfile::tempdir().unwrap();
    let (owned, windowed) = (base.path().join("owned"), base.path().join("windowed"));
    let (owned, windowed) = (owned.to_str().unwrap(), windowed.to_str().unwrap());
    let record = |out: &str, how: &[&str]| {
        let mut args = vec!["record", &topic, "--out", out, "-e"];
        args.extend(how);
        run(&args)
    };
    let refused = |out: &str, how: &[&str], says: &str| {
        let output = record(out, how);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(says), "{}", stderr(&output));
    };
    let first = format!("{topic}-first");
    assert!(record(owned, &["-g", &first]).status.success());
    let archived = file_names(Path::new(owned));
    assert_eq!(archive_alerts(Path::new(owned)), 3);
    let other = format!("{topic}-other");
    refused(owned, &["-g", &other], &format!("of group {first}"));
    refused(
        owned,
        &["--from", "-1h"],
        "record the time window into another folder",
    );
    assert_eq!(file_names(Path::new(owned)), archived, "nothing removed");
    assert!(record(owned, &["-g", &first]).status.success());
    assert!(record(windowed, &["--from", "-1h"]).status.success());
    refused(windowed, &["-g", &first], "no group has claimed");
    assert_eq!(archive_alerts(Path::new(windowed)), 3);
}

/// An --out it cannot write fails the start, before any alert is read
/// (a read-only mount: root may write anywhere else).
#[test]
fn an_out_that_cannot_be_written_exits_2_at_the_start() {
    let topic = topic("record-read-only");
    let group = format!("{topic}-group");
    ok(&["send", &topic, "2"]);
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("read-only");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = mount_tmpfs(&dir, "ro,size=64k");
    let out = dir.to_str().unwrap();
    let grouped = run(&["record", &topic, "--out", out, "-g", &group, "-e"]);
    let windowed = run(&["record", &topic, "--out", out, "--from", "-1h", "-e"]);
    // A folder still to be made under it is refused before the brokers
    // are reached (none answers at 127.0.0.1:1).
    let inside = dir.join("night/archive");
    let inside = inside.to_str().unwrap();
    let unreachable = ["-b", "127.0.0.1:1", "record", &topic, "--out", inside];
    let to_create = run(&[&unreachable[..], &["-g", &group, "-e"]].concat());
    drop(mounted);
    assert_eq!(to_create.status.code(), Some(2), "{}", stderr(&to_create));
    assert!(
        stderr(&to_create).contains(&format!("cannot create --out {inside}: {out}")),
        "{}",
        stderr(&to_create)
    );
    for output in [grouped, windowed] {
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(&format!("cannot write to --out {out}")),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(committed_offset(&group, &topic), -1);
}

/// Alerts in the Avro archives of `dir`.
fn archive_alerts(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .map(|p| container_alerts(&p).len())
        .sum()
}

/// A window cleans up nothing, so a name planted in its folder is there when
/// it writes: a symlink at its temporary name is replaced, never followed.
#[test]
fn a_planted_symlink_at_a_temporary_name_is_not_followed() {
    let topic = topic("record-planted");
    ok(&["send", &topic, "2"]);
    let base = tempfile::tempdir().unwrap();
    let (out, victim) = (base.path().join("out"), base.path().join("victim"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(&victim, "not an archive").unwrap();
    let name = format!("{topic}-p0-o{:020}.avro", 0);
    std::os::unix::fs::symlink(&victim, out.join(format!(".{name}.part"))).unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        out.to_str().unwrap(),
        "--from",
        "-1h",
        "-e",
    ]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not an archive");
    assert!(std::fs::symlink_metadata(out.join(&name))
        .unwrap()
        .is_file());
    assert_eq!(container_alerts(&out.join(&name)).len(), 2);
}

fn number_between(text: &str, before: &str, after: &str) -> Option<u64> {
    let start = text.find(before)? + before.len();
    let end = start + text[start..].find(after)?;
    let digits = &text[start..end];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == ',') {
        return None;
    }
    digits.replace(',', "").parse().ok()
}
