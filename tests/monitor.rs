//! monitor: the original's end-of-partition lines, and status lines.

mod common;

use common::*;

#[test]
fn end_of_partition_lines_in_the_original_format() {
    let topic = topic("monitor");
    create_topic(&topic, 2);
    ok(&[
        "send",
        &topic,
        "20",
        "-X",
        "sticky.partitioning.linger.ms=0",
    ]);
    let stdout = ok(&["monitor", &topic, "--group", "mon", "-e", "--every", "0"]);
    let mut offsets = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split(", ").collect();
        assert_eq!(fields.len(), 6, "{line}");
        assert_eq!(fields[0], format!("topic:{topic}"));
        assert!(fields[1].starts_with("partition:"), "{line}");
        assert_eq!(fields[2], "status:end");
        assert_eq!(fields[4], "key:None");
        let time: f64 = fields[5].strip_prefix("time:").unwrap().parse().unwrap();
        assert!(time > 1.7e9, "{line}");
        let partition: i32 = fields[1]["partition:".len()..].parse().unwrap();
        let offset: i64 = fields[3].strip_prefix("offset:").unwrap().parse().unwrap();
        offsets.push((partition, offset));
    }
    offsets.sort();
    assert_eq!(offsets.len(), 2, "one end line per partition:\n{stdout}");
    assert_eq!(offsets[0].0, 0);
    assert_eq!(offsets[1].0, 1);
    assert_eq!(
        offsets[0].1 + offsets[1].1,
        20,
        "end offsets add up to the alerts sent"
    );
}

/// Waits for a stdout line of `running` that `pred` accepts.
fn wait_line(running: &Running, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + RUN_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = running
            .stdout
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line with {what}"));
        if pred(&line) {
            return line;
        }
    }
}

#[test]
fn status_lines_report_rate_lag_and_latency() {
    let topic = topic("status");
    create_topic(&topic, 1);
    let monitor = spawn(&["monitor", &topic, "--every", "0.2"]);
    // Monitor watches what arrives after it starts: from the end it reports.
    wait_line(&monitor, "the end of the partition", |l| {
        l.contains("status:end")
    });
    ok(&["send", &topic]);
    let mut seen = 0;
    wait_line(&monitor, "a caught-up status line", |line| {
        if !line.contains("status:stats") {
            return false;
        }
        let messages: u64 = field(line, "messages:").parse().unwrap();
        seen += messages;
        if messages > 0 {
            assert!(field(line, "latency_p50:").ends_with('s'), "{line}");
            assert!(field(line, "latency_p99:").ends_with('s'), "{line}");
            assert!(field(line, "rate:").ends_with("/s"), "{line}");
        }
        seen == 12 && field(line, "lag:") == "0"
    });
    let (status, _, log) = monitor.terminate();
    assert!(status.success(), "{}", log.join("\n"));
    assert_eq!(seen, 12);
}

/// Issue 9: `monitor --group readers` joined the group and committed offsets
/// of alerts it never printed, so `print --group readers` got 0 of 12.
#[test]
fn monitor_watches_groups_without_joining_or_committing() {
    let topic = topic("watch");
    ok(&["send", &topic]);
    let monitor = spawn(&[
        "monitor", &topic, "--group", "readers", "--group", "others", "--every", "0.2",
    ]);
    let before = wait_line(&monitor, "the lag of readers", |l| {
        l.contains("group:readers")
    });
    assert!(
        before.contains("status:lag, group:readers, lag:12 [0=12]"),
        "{before}"
    );
    // While monitor watches, the group itself gets every alert.
    let printed = json_lines(&ok(&["print", &topic, "--group", "readers", "-e"]));
    assert_eq!(printed.len(), 12);
    wait_line(&monitor, "readers caught up", |l| {
        l.contains("group:readers, lag:0 [0=0]")
    });
    let others = wait_line(&monitor, "the lag of others", |l| {
        l.contains("group:others")
    });
    assert!(others.contains("lag:12"), "{others}");
    let (status, _, log) = monitor.terminate();
    assert!(status.success(), "{}", log.join("\n"));
    // Nothing monitor did moved the groups' offsets.
    let again = json_lines(&ok(&["print", &topic, "--group", "others", "-e"]));
    assert_eq!(again.len(), 12, "group others untouched by monitor");
}

/// `monitor -e --group G` says each group's lag once as it ends: a one-shot check.
#[test]
fn monitor_at_the_end_says_each_watched_groups_lag_once() {
    let topic = topic("watch-once");
    let (all, none) = (format!("{topic}-read-all"), format!("{topic}-read-none"));
    ok(&["send", &topic]);
    ok(&["print", &topic, "--group", &all, "-e"]);
    // Status lines every hour: only the last lines come in this run.
    let out = ok(&[
        "monitor", &topic, "-e", "--every", "3600", "--group", &all, "--group", &none,
    ]);
    let lags: Vec<&str> = out.lines().filter(|l| l.contains("status:lag")).collect();
    assert_eq!(lags.len(), 2, "{out}");
    assert!(
        lags[0].contains(&format!("group:{all}, lag:0 [0=0]")),
        "{out}"
    );
    assert!(
        lags[1].contains(&format!("group:{none}, lag:12 [0=12]")),
        "{out}"
    );
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("{key} missing: {line}"))
        + key.len();
    let rest = &line[start..];
    rest.split([',', ' ']).next().unwrap()
}
