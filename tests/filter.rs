//! filter on the real broker: ZTF's purity cut over every fixture version
//! against a Python evaluation, alerts forwarded byte for byte, several
//! routes, print --where, kill -9 and restart exactly once, bad expressions
//! and an output that cannot be written.

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

#[test]
fn a_filter_killed_and_restarted_routes_every_alert_exactly_once() {
    let topic = topic("filter-kill");
    let group = format!("{topic}-group");
    create_topic(&topic, 2);
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
    let args = [
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
    ];
    // A short session, so that the killed instance leaves the group soon.
    let mut first = args.to_vec();
    first.extend(["-X", "session.timeout.ms=6000"]);
    let filter = spawn(&first);
    let mut log = Vec::new();
    send.wait_stderr("visit 4", |l| l.contains("visit 4/8: sending"), &mut log);
    signal(filter.child.id(), "KILL");
    let _ = filter.wait();
    let (status, _, _) = send.wait();
    assert!(status.success());
    wait_until_group_is_empty(&group);
    let mut again = args.to_vec();
    again.push("-e");
    let output = run(&again);
    assert!(output.status.success(), "{}", stderr(&output));
    let (routed, duplicated) = routed_once(&out);
    report(&format!(
        "filter killed -9 and restarted: 2400 sent, {routed} routed (read_committed), {duplicated} duplicated"
    ));
    assert_eq!(routed, 2400, "nothing lost");
    assert_eq!(duplicated, 0, "nothing twice");
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
    assert_eq!(committed_offset(&group, &topic), -1, "nothing consumed");
    assert!(!topic_exists(&out), "nothing produced");
}

#[test]
fn an_output_that_cannot_be_written_commits_no_input_offsets() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let topic = topic("filter-unwritable");
    let group = format!("{topic}-group");
    ok(&["send", &topic, "3"]);
    let out = format!("{topic}-small");
    // Alerts of ~50 KB cannot go into a topic whose messages may be 1 KB.
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
