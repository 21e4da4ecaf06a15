//! filter on the real broker: ZTF's purity cut over every fixture version
//! against a Python evaluation, alerts forwarded byte for byte, several
//! routes, print --where, kill -9 and restart exactly once, bad expressions,
//! an output that cannot be written, and what --limit-per-visit and
//! --dedupe-key hold back.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use common::*;

const PURITY: &str = "candidate.rb >= 0.65 && candidate.nbad == 0 && candidate.fwhm <= 5.0 \
                      && candidate.elong <= 1.2 && abs(candidate.magdiff) <= 0.1";
const BRIGHT: &str = "candidate.magpsf < 18.5";

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(ztf_fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    files.sort();
    files
}

/// What Python selects: {"purity": [candid...], "bright": [...]}.
fn python_cuts() -> serde_json::Value {
    let files = fixtures();
    let args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    serde_json::from_str(&python_script("cuts.py", &args)).unwrap()
}

/// (candid, schema version): the same candid exists under several versions.
type AlertId = (i64, String);

fn candids(json: &serde_json::Value) -> HashSet<AlertId> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|c| (c[0].as_i64().unwrap(), c[1].as_str().unwrap().to_string()))
        .collect()
}

fn send_fixtures(topic: &str) {
    let mut args = vec!["send", topic, "--format", "container"];
    let files = fixtures();
    for file in &files {
        args.extend(["--alerts", file.to_str().unwrap()]);
    }
    ok(&args);
}

/// The candid and schema version of a container message, as alertstream decodes it.
fn candid(payload: &[u8]) -> AlertId {
    let decoder =
        alertstream::avro::codec::Decoder::new(alertstream::avro::schema::built_in(), false);
    let (_, alerts) = decoder.decode(payload).unwrap();
    let json = expected_json(&alerts[0]);
    (
        json["candid"].as_i64().unwrap(),
        json["schemavsn"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn the_purity_cut_selects_what_python_selects_and_forwards_it_unchanged() {
    let topic = topic("filter-ztf");
    let group = format!("{topic}-group");
    send_fixtures(&topic);
    let (pure, bright) = (format!("{topic}-pure"), format!("{topic}-bright"));
    let output = run(&[
        "filter", &topic, "--group", &group, "-e", "--where", PURITY, "--to", &pure, "--where",
        BRIGHT, "--to", &bright,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = python_cuts();
    let input: HashMap<AlertId, RawMessage> = read_committed(&topic)
        .into_iter()
        .map(|m| (candid(&m.payload), m))
        .collect();
    for (out, cut) in [(&pure, "purity"), (&bright, "bright")] {
        let routed = read_committed(out);
        let selected: HashSet<AlertId> = routed.iter().map(|m| candid(&m.payload)).collect();
        assert_eq!(selected, candids(&expected[cut]), "{cut}");
        assert_eq!(selected.len(), routed.len(), "{cut}: each once");
        for message in &routed {
            let original = &input[&candid(&message.payload)];
            assert_eq!(message.payload, original.payload, "payload bytes unchanged");
            assert_eq!(message.headers, original.headers, "headers unchanged");
            assert_eq!(message.key, original.key);
            assert_eq!(message.timestamp, original.timestamp, "timestamp unchanged");
        }
    }
    assert!(!candids(&expected["purity"]).is_empty() && candids(&expected["purity"]).len() < 20);
    report(&format!(
        "filter: purity cut selected {} of 20 ZTF fixtures, bright {} (as Python)",
        candids(&expected["purity"]).len(),
        candids(&expected["bright"]).len()
    ));
    // print --where selects the same alerts.
    let printed = json_lines(&ok(&[
        "print", &topic, "-e", "--group", "p", "--where", PURITY,
    ]));
    let printed: HashSet<AlertId> = printed
        .iter()
        .map(|a| {
            let version = a["schemavsn"].as_str().unwrap_or("").to_string();
            (a["candid"].as_i64().unwrap(), version)
        })
        .collect();
    assert_eq!(printed, candids(&expected["purity"]));
}

/// Visit numbers are ticks of the wall clock (time / --interval) with
/// --repeat, and a single visit's start in milliseconds, so runs of send
/// into one topic never share one, and --limit-per-visit counts each run's
/// visits apart.
#[test]
fn separate_sends_never_share_a_visit_number() {
    let topic = topic("filter-runs");
    for _ in 0..2 {
        ok(&[
            "send",
            &topic,
            "3",
            "--no-stamps",
            "--repeat",
            "--interval",
            "0.5",
            "--max-repeats",
            "2",
        ]);
    }
    // Two single visits at once: within the same 39 s tick.
    ok(&["send", &topic, "3", "--no-stamps"]);
    ok(&["send", &topic, "3", "--no-stamps"]);
    let input = read_committed(&topic);
    assert_eq!(input.len(), 18);
    let visits: HashSet<String> = input
        .iter()
        .map(|m| header(m, "alertstream-visit"))
        .collect();
    assert_eq!(visits.len(), 6, "{visits:?}");
    for single in [&input[12], &input[15]] {
        let started: i64 = header(single, "alertstream-visit").parse().unwrap();
        let sent_ms = single.timestamp.unwrap();
        assert!(
            (0..5_000).contains(&(sent_ms - started)),
            "a single visit started at {started} ms, sent at {sent_ms} ms"
        );
    }
    let (log, capped) = filter_with(&topic, &format!("{topic}-two"), &["--limit-per-visit", "2"]);
    assert_eq!(capped.len(), 12, "two of each of 6 visits:\n{log}");
}

/// The README's purity-cut example is [`PURITY`], and it selects most of the
/// built-in sample alerts (realistic values), not none of them.
#[test]
fn the_readme_purity_cut_selects_most_sample_alerts() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains(&format!("'{}'", words(PURITY))),
        "the README's filter example is not tests/filter.rs' PURITY"
    );
    let topic = topic("filter-samples");
    ok(&["send", &topic, "--no-stamps"]);
    let pure = format!("{topic}-pure");
    ok(&[
        "filter", &topic, "--group", &topic, "-e", "--where", PURITY, "--to", &pure,
    ]);
    let routed = read_committed(&pure).len();
    assert!((7..12).contains(&routed), "{routed} of 12 sample alerts");
}

/// A filter killed with -9 mid-stream and restarted in its group: every
/// alert is routed, and every undecodable message dead-lettered, exactly
/// once (both go in the same transactions as the input offsets).
#[test]
fn a_filter_killed_and_restarted_routes_every_alert_exactly_once() {
    let topic = topic("filter-kill");
    let group = format!("{topic}-group");
    create_topic(&topic, 2);
    let out = format!("{topic}-out");
    let dead = format!("{topic}-dead");
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
    let args = [
        "filter",
        &topic,
        "--group",
        &group,
        "--where",
        "candid > 0",
        "--to",
        &out,
        "--dead-letter",
        &dead,
        "--commit-interval",
        "0.2",
    ];
    // Undecodable messages among the alerts, before and after the kill.
    let garbage: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("garbage-{i}").into_bytes())
        .collect();
    let (before, after) = garbage.split_at(20);
    fn slices(part: &[Vec<u8>]) -> Vec<&[u8]> {
        part.iter().map(Vec::as_slice).collect()
    }
    // A short session, so that the killed instance leaves the group soon.
    let mut first = args.to_vec();
    first.extend(["-X", "session.timeout.ms=6000"]);
    let filter = spawn(&first);
    let mut log = Vec::new();
    send.wait_stderr("visit 2", |l| l.contains("visit 2/8: sending"), &mut log);
    produce_raw(&topic, &slices(before));
    send.wait_stderr("visit 4", |l| l.contains("visit 4/8: sending"), &mut log);
    signal(filter.child.id(), "KILL");
    let _ = filter.wait();
    send.wait_stderr("visit 6", |l| l.contains("visit 6/8: sending"), &mut log);
    produce_raw(&topic, &slices(after));
    let (status, _, _) = send.wait();
    assert!(status.success());
    wait_until_group_is_empty(&group);
    let mut again = args.to_vec();
    again.push("-e");
    let output = run(&again);
    assert!(output.status.success(), "{}", stderr(&output));
    let (routed, duplicated) = routed_once(&out);
    let mut dead_letters: Vec<Vec<u8>> = read_committed(&dead)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    dead_letters.sort();
    let mut expected = garbage.clone();
    expected.sort();
    report(&format!(
        "filter killed -9 and restarted: 2400 sent, {routed} routed (read_committed), {duplicated} duplicated; \
         40 undecodable, {} dead-lettered",
        dead_letters.len()
    ));
    assert_eq!(routed, 2400, "nothing lost");
    assert_eq!(duplicated, 0, "nothing twice");
    assert_eq!(
        dead_letters, expected,
        "each undecodable message dead-lettered once"
    );
}

/// Each alert once per (visit, index) in the read_committed output: (routed, duplicated).
fn routed_once(out: &str) -> (usize, usize) {
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for message in read_committed(out) {
        let header = |k: &str| {
            let v = message
                .headers
                .iter()
                .find(|(key, _)| key == k)
                .unwrap()
                .1
                .clone();
            String::from_utf8(v.unwrap()).unwrap()
        };
        *seen
            .entry((header("alertstream-visit"), header("alertstream-index")))
            .or_insert(0) += 1;
    }
    (seen.len(), seen.values().map(|n| n - 1).sum())
}

/// Two filters in one group (each with its own transactional.id): the
/// second joining mid-stream and leaving at its end rebalances the first
/// twice; each revocation aborts the open transaction and rewinds, and the
/// output still holds every alert exactly once.
#[test]
fn rebalances_route_every_alert_exactly_once() {
    let topic = topic("filter-rebalance");
    let group = format!("{topic}-group");
    create_topic(&topic, 4);
    let out = format!("{topic}-out");
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
    let instance = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "filter",
            &topic,
            "--group",
            &group,
            "--where",
            "candid > 0",
            "--to",
            &out,
            "--commit-interval",
            "0.2",
            "--transactional-id",
        ];
        args.push(id);
        args.extend_from_slice(extra);
        spawn(&args)
    };
    let first = instance("first", &[]);
    let mut log = Vec::new();
    send.wait_stderr("visit 3", |l| l.contains("visit 3/8: sending"), &mut log);
    let second = instance("second", &["-e"]);
    let mut second_log = Vec::new();
    second.wait_stderr(
        "an assignment",
        |l| l.contains("partitions assigned"),
        &mut second_log,
    );
    let (status, _, _) = send.wait();
    assert!(status.success());
    let (status, _, rest) = second.wait();
    assert!(status.success(), "{}", rest.join("\n"));
    let (status, _, first_log) = first.terminate();
    assert!(status.success(), "{}", first_log.join("\n"));
    assert!(
        first_log.iter().any(|l| l.contains("partitions revoked")),
        "the first filter saw a rebalance"
    );
    // Whatever is left after the first one stopped.
    let output = run(&[
        "filter",
        &topic,
        "--group",
        &group,
        "--where",
        "candid > 0",
        "--to",
        &out,
        "-e",
        "--transactional-id",
        "third",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let (routed, duplicated) = routed_once(&out);
    report(&format!(
        "filter rebalanced twice: 2400 sent, {routed} routed (read_committed), {duplicated} duplicated"
    ));
    assert_eq!(routed, 2400, "nothing lost");
    assert_eq!(duplicated, 0, "nothing twice");
    // The closing lines count only what committed transactions routed: an
    // aborted transaction's alerts are counted by whoever routes them again.
    let said = |lines: &[String]| -> usize {
        let line = lines
            .iter()
            .find(|l| l.contains("filtered ") && l.contains(": routed "))
            .unwrap_or_else(|| panic!("no closing line in {lines:#?}"));
        let after = &line[line.find(": routed ").unwrap() + 9..];
        after.split_whitespace().next().unwrap().parse().unwrap()
    };
    let third: Vec<String> = stderr(&output).lines().map(str::to_string).collect();
    assert_eq!(
        said(&first_log) + said(&rest) + said(&third),
        2400,
        "the closing lines add up to what was routed"
    );
}

/// A message's header as text.
fn header(message: &RawMessage, key: &str) -> String {
    let value = message.headers.iter().find(|(k, _)| k == key).unwrap();
    String::from_utf8(value.1.clone().unwrap()).unwrap()
}

/// The decoded alert of a schemaless sample message.
fn sample_json(message: &RawMessage) -> serde_json::Value {
    let decoder =
        alertstream::avro::codec::Decoder::new(alertstream::avro::schema::built_in(), false);
    let (_, alerts) = decoder.decode(&message.payload).unwrap();
    expected_json(&alerts[0])
}

/// Routes filtering `topic` with the `holds` options: (stderr, what reached `out`).
fn filter_with(topic: &str, out: &str, holds: &[&str]) -> (String, Vec<RawMessage>) {
    let group = format!("{out}-group");
    let mut args = vec![
        "filter",
        topic,
        "--group",
        &group,
        "-e",
        "--where",
        "candid > 0",
        "--to",
        out,
    ];
    args.extend_from_slice(holds);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    (stderr(&output), read_committed(out))
}

/// --limit-per-visit keeps the first N of each visit (by the send header,
/// or by --visit-key); --dedupe-key keeps an object once per window of
/// message time, checked against the input's own timestamps.
#[test]
fn visit_limits_and_dedupe_hold_back_exactly_what_they_should() {
    let topic = topic("filter-holds");
    // Four visits of the same 12 alerts (12 objects, 3 exposures of 4).
    ok(&[
        "send",
        &topic,
        "--no-stamps",
        "--repeat",
        "--interval",
        "0.5",
        "--max-repeats",
        "4",
    ]);
    let input = read_committed(&topic);
    assert_eq!(input.len(), 48);

    let (log, capped) = filter_with(
        &topic,
        &format!("{topic}-five"),
        &["--limit-per-visit", "5"],
    );
    let mut per_visit: HashMap<String, Vec<u64>> = HashMap::new();
    for m in &capped {
        let index = header(m, "alertstream-index").parse().unwrap();
        per_visit
            .entry(header(m, "alertstream-visit"))
            .or_default()
            .push(index);
    }
    assert_eq!(per_visit.len(), 4, "{per_visit:?}");
    for indices in per_visit.values() {
        assert_eq!(indices, &[0, 1, 2, 3, 4], "the first five of each visit");
    }
    assert!(log.contains("(28 over --limit-per-visit)"), "{log}");

    let (_, by_exposure) = filter_with(
        &topic,
        &format!("{topic}-jd"),
        &["--limit-per-visit", "2", "--visit-key", "candidate.jd"],
    );
    let mut per_jd: HashMap<String, usize> = HashMap::new();
    for m in &by_exposure {
        assert_eq!(
            header(m, "alertstream-visit"),
            header(&input[0], "alertstream-visit")
        );
        *per_jd
            .entry(sample_json(m)["candidate"]["jd"].to_string())
            .or_default() += 1;
    }
    assert_eq!(per_jd.len(), 3);
    assert!(per_jd.values().all(|n| *n == 2), "{per_jd:?}");

    let (log, once) = filter_with(
        &topic,
        &format!("{topic}-once"),
        &["--dedupe-key", "objectId", "--dedupe-window", "1h"],
    );
    let objects: HashSet<String> = once
        .iter()
        .map(|m| sample_json(m)["objectId"].to_string())
        .collect();
    assert_eq!((once.len(), objects.len()), (12, 12), "each object once");
    assert!(once
        .iter()
        .all(|m| header(m, "alertstream-visit") == header(&input[0], "alertstream-visit")));
    assert!(log.contains("(36 duplicate(s))"), "{log}");

    // Visits 0.5 s apart and a window of 0.6 s: some visits go again and
    // some are held, by the messages' own timestamps.
    let window = 600;
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut expected = Vec::new();
    for m in &input {
        let (object, at) = (sample_json(m)["objectId"].to_string(), m.timestamp.unwrap());
        if last
            .get(&object)
            .is_none_or(|routed| (at - routed).abs() >= window)
        {
            last.insert(object, at);
            expected.push(m.payload.clone());
        }
    }
    let (_, windowed) = filter_with(
        &topic,
        &format!("{topic}-window"),
        &["--dedupe-key", "objectId", "--dedupe-window", "0.6s"],
    );
    let windowed: Vec<Vec<u8>> = windowed.into_iter().map(|m| m.payload).collect();
    assert_eq!(windowed, expected);
    // Nominally 24; a visit sent late may shift which go, never all or none.
    assert!(
        12 < windowed.len() && windowed.len() < 48,
        "{}",
        windowed.len()
    );
    report(&format!(
        "filter holds: 48 sent in 4 visits; --limit-per-visit 5 kept {}, by exposure 2 kept {}, \
         --dedupe-key objectId kept {} (1h) and {} (0.6 s window)",
        capped.len(),
        by_exposure.len(),
        once.len(),
        windowed.len()
    ));
}

#[test]
fn bad_expressions_fail_before_anything_is_consumed() {
    let topic = topic("filter-bad");
    let group = format!("{topic}-group");
    ok(&["send", &topic, "2"]);
    let out = format!("{topic}-out");
    for (expr, expected) in [
        ("candidate.rbb > 0.5", "closest: candidate.rb"),
        ("candidat.rb > 0.5", "closest: candidate"),
        ("candidate.rb >", "syntax error at column"),
    ] {
        let output = run(&[
            "filter", &topic, "--group", &group, "-e", "--where", expr, "--to", &out,
        ]);
        assert_eq!(output.status.code(), Some(2), "{expr}");
        assert!(
            stderr(&output).contains(expected),
            "{expr}: {}",
            stderr(&output)
        );
    }
    for (holds, expected) in [
        (&["--limit-per-visit", "0"][..], "--limit-per-visit 0"),
        (
            &["--limit-per-visit", "2", "--visit-key", "candidate.jdd"],
            "closest: candidate.jd",
        ),
        (
            &["--dedupe-key", "objectid", "--dedupe-window", "1h"],
            "closest: objectId",
        ),
        (
            &["--dedupe-key", "objectId", "--dedupe-window", "1 hour"],
            "--dedupe-window",
        ),
        (&["--dedupe-key", "objectId"], "--dedupe-window"),
    ] {
        let mut args = vec![
            "filter", &topic, "--group", &group, "-e", "--where", "true", "--to", &out,
        ];
        args.extend_from_slice(holds);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "{holds:?}");
        assert!(
            stderr(&output).contains(expected),
            "{holds:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(committed_offset(&group, &topic), -1, "nothing consumed");
    assert!(!topic_exists(&out), "nothing produced");
}

/// A topic of three alerts, and an output topic whose messages may be 1 KB:
/// alerts of ~50 KB cannot go into it.
fn alerts_and_an_unwritable_output(name: &str) -> (String, String) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let topic = topic(name);
    ok(&["send", &topic, "3"]);
    let out = format!("{topic}-small");
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let new = NewTopic::new(&out, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "1024");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in runtime
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap();
    }
    (topic, out)
}

#[test]
fn an_output_that_cannot_be_written_commits_no_input_offsets() {
    let (topic, out) = alerts_and_an_unwritable_output("filter-unwritable");
    let group = format!("{topic}-group");
    let output = run(&[
        "filter",
        &topic,
        "--group",
        &group,
        "-e",
        "--where",
        "candid > 0",
        "--to",
        &out,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot commit the transaction"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        committed_offset(&group, &topic),
        -1,
        "input offsets not committed"
    );
    assert!(read_committed(&out).is_empty());
}

/// A window has no committed offsets to read a refused transaction's input
/// again from: it fails at once, saying to run the window again, where a
/// filter in a group aborts and reads its input again first.
#[test]
fn a_window_whose_transaction_fails_is_not_read_again() {
    let (topic, out) = alerts_and_an_unwritable_output("filter-window-unwritable");
    let route = |window: &[&str]| {
        // A commit as soon as a message is pending: before the end, where
        // a filter in a group may still read its input again.
        let mut args = vec!["filter", &topic, "--where", "candid > 0", "--to", &out];
        args.extend(["--commit-interval", "0.001"]);
        args.extend(window);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        stderr(&output)
    };
    let group = format!("{topic}-group");
    let in_group = route(&["--group", &group, "-e"]);
    assert!(in_group.contains("is read again"), "{in_group}");
    let window = route(&["--from", "-1h", "--until", "now"]);
    assert!(!window.contains("is read again"), "{window}");
    assert!(window.contains("run the window again"), "{window}");
    assert!(read_committed(&out).is_empty());
}

/// Interrupted while it waits for its input topic, filter ends as print
/// and record do: exit 0 and a summary that says nothing was read.
#[test]
fn a_filter_stopped_before_its_input_exists_says_what_it_did() {
    let topic = topic("filter-never");
    let out = format!("{topic}-out");
    let waiting = spawn(&["filter", &topic, "--where", "true", "--to", &out]);
    let mut seen = Vec::new();
    waiting.wait_stderr("the wait", |l| l.contains("waiting for it"), &mut seen);
    signal(waiting.child.id(), "INT");
    let (status, _, stderr) = waiting.wait();
    let said = format!("{}\n{}", seen.join("\n"), stderr.join("\n"));
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(
        said.contains("filtered 0 alert(s) from 0 message(s)"),
        "{said}"
    );
}
