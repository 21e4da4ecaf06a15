//! Consumer groups: one group shares the stream, separate groups each see all.

mod common;

use std::collections::HashMap;

use common::*;

/// The partitions of the newest "partitions assigned: t[0] t[1]" log line.
fn assigned(line: &str) -> Option<usize> {
    line.split_once("partitions assigned: ")
        .map(|(_, rest)| rest.split_whitespace().count())
}

#[test]
fn two_consumers_in_one_group_share_the_stream() {
    let topic = topic("share");
    create_topic(&topic, 2);
    let group = "sharing";
    let a = spawn(&["print", &topic, "--group", group]);
    let b = spawn(&["print", &topic, "--group", group]);
    // Wait until the group has settled: each consumer holds one partition.
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let (mut last_a, mut last_b) = (0, 0);
    while !(last_a == 1 && last_b == 1) {
        if last_a != 1 {
            a.wait_stderr("an assignment of a", |l| assigned(l).is_some(), &mut seen_a);
            last_a = assigned(seen_a.last().unwrap()).unwrap();
        }
        if last_b != 1 {
            b.wait_stderr("an assignment of b", |l| assigned(l).is_some(), &mut seen_b);
            last_b = assigned(seen_b.last().unwrap()).unwrap();
        }
        // A consumer that had both partitions gives one up when the other joins.
        if last_a == 2 || last_b == 2 {
            continue;
        }
    }
    // Spread the alerts over both partitions (no sticky batching to one partition).
    ok(&[
        "send",
        &topic,
        "40",
        "-X",
        "sticky.partitioning.linger.ms=0",
    ]);

    // Wait for all 40 lines across both consumers, then stop both cleanly.
    let mut lines_a = Vec::new();
    let mut lines_b = Vec::new();
    let deadline = std::time::Instant::now() + RUN_LIMIT;
    while lines_a.len() + lines_b.len() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} + {} lines",
            lines_a.len(),
            lines_b.len()
        );
        let tick = std::time::Duration::from_millis(200);
        if let Ok(line) = a.stdout.recv_timeout(tick) {
            lines_a.push(line);
        }
        while let Ok(line) = b.stdout.try_recv() {
            lines_b.push(line);
        }
    }
    let (status_a, rest_a, log_a) = a.terminate();
    let (status_b, rest_b, log_b) = b.terminate();
    assert!(status_a.success(), "a: {status_a}\n{}", log_a.join("\n"));
    assert!(status_b.success(), "b: {status_b}\n{}", log_b.join("\n"));
    lines_a.extend(rest_a);
    lines_b.extend(rest_b);
    assert!(
        !lines_a.is_empty() && !lines_b.is_empty(),
        "both consumers got a share: {} and {}",
        lines_a.len(),
        lines_b.len()
    );

    // Each alert printed once in total: the counts per candid match what was sent.
    let source = sample_alerts();
    let mut expected: HashMap<i64, usize> = HashMap::new();
    for i in 0..40 {
        let candid = expected_json(&source[i % source.len()])["candid"]
            .as_i64()
            .unwrap();
        *expected.entry(candid).or_default() += 1;
    }
    let mut printed: HashMap<i64, usize> = HashMap::new();
    for line in lines_a.iter().chain(&lines_b) {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        *printed.entry(json["candid"].as_i64().unwrap()).or_default() += 1;
    }
    assert_eq!(printed, expected);
}

#[test]
fn two_groups_each_see_every_alert() {
    let topic = topic("groups");
    ok(&["send", &topic]);
    let expected: Vec<_> = sample_alerts().iter().map(expected_json).collect();
    for group in ["first", "second"] {
        let lines = json_lines(&ok(&["print", &topic, "--group", group, "-e"]));
        assert_eq!(lines, expected, "group {group}");
    }
}

/// A member killed without leaving keeps its partitions until its session
/// times out; the consumer restarted in its place says why it waits instead
/// of looking hung, and then gets the partitions.
#[test]
fn a_consumer_waiting_for_a_killed_members_partitions_says_why() {
    let topic = topic("groups-killed");
    create_topic(&topic, 1);
    let group = format!("{topic}-group");
    // A session longer than the notice's 5 s, so that the wait outlasts it.
    let args = [
        "print",
        &topic,
        "--group",
        &group,
        "-X",
        "session.timeout.ms=15000",
    ];
    let killed = spawn(&args);
    let mut seen = Vec::new();
    killed.wait_stderr("the first assignment", |l| assigned(l).is_some(), &mut seen);
    signal(killed.child.id(), "KILL");
    let _ = killed.wait();
    let restarted = spawn(&args);
    let mut log = Vec::new();
    restarted.wait_stderr("the partition", |l| assigned(l) == Some(1), &mut log);
    let notice = log.iter().position(|l| {
        l.contains(&format!(
            "no partitions of {topic} from group {group} after 5 s"
        )) && l.contains("session.timeout.ms")
    });
    assert!(
        notice.is_some_and(|at| at + 1 < log.len()),
        "the wait explained before the assignment:\n{}",
        log.join("\n")
    );
    restarted.terminate();
}

/// A group consumer waiting for its topic to be created says that, not a
/// killed member's session: the topic's wait starts the notice over.
#[test]
fn a_consumer_waiting_for_its_topic_does_not_blame_a_session() {
    let topic = topic("groups-no-topic-yet");
    let group = format!("{topic}-group");
    let waiting = spawn(&["print", &topic, "--group", &group]);
    let mut log = Vec::new();
    let consuming = format!("consuming {topic} in group");
    waiting.wait_stderr("the consume loop", |l| l.contains(&consuming), &mut log);
    assert!(
        log.iter().any(|l| l.contains("does not exist")),
        "{}",
        log.join("\n")
    );
    // Past the notice's 5 s: nothing here can be awaited but the time.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let (_, _, rest) = waiting.terminate();
    log.extend(rest);
    assert!(
        !log.iter().any(|l| l.contains("no partitions of")),
        "{}",
        log.join("\n")
    );
}
