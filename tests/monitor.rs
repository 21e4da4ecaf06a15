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

#[test]
fn status_lines_report_rate_lag_and_latency() {
    let topic = topic("status");
    ok(&["send", &topic]);
    let monitor = spawn(&["monitor", &topic, "--group", "mon", "--every", "0.2"]);
    // Wait for a status line that has seen every message and has no lag left.
    let deadline = std::time::Instant::now() + RUN_LIMIT;
    let mut seen = 0;
    let mut caught_up = None;
    while caught_up.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no caught-up status line"
        );
        let line = monitor.stdout.recv_timeout(RUN_LIMIT).expect("a line");
        if !line.contains("status:stats") {
            continue;
        }
        let messages: u64 = field(&line, "messages:").parse().unwrap();
        seen += messages;
        if messages > 0 {
            assert!(field(&line, "latency_p50:").ends_with('s'), "{line}");
            assert!(field(&line, "latency_p99:").ends_with('s'), "{line}");
        }
        if seen == 12 && field(&line, "lag:") == "0" {
            caught_up = Some(line);
        }
    }
    let (status, _, log) = monitor.terminate();
    assert!(status.success(), "{}", log.join("\n"));
    assert_eq!(seen, 12);
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("{key} missing: {line}"))
        + key.len();
    let rest = &line[start..];
    rest.split([',', ' ']).next().unwrap()
}
