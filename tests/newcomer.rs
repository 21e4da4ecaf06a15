//! Issue 24: the defects a first walk-through of the README hit, each held
//! by a test that fails without its fix.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;

use common::*;

/// `--from -1h` as the README and `--help` write it (not only `--from=-1h`).
#[test]
fn relative_times_take_a_leading_minus() {
    let topic = topic("relative");
    ok(&["send", &topic, "3", "--no-stamps"]);
    let lines = json_lines(&ok(&["print", &topic, "--from", "-1h", "-e"]));
    assert_eq!(lines.len(), 3, "sent within the last hour");
    // Everything was sent in the last minute: an hour ago to 30 minutes
    // ago holds nothing, and the window still ends.
    let lines = json_lines(&ok(&["print", &topic, "--from", "-1h", "--until", "-30m"]));
    assert!(lines.is_empty());
    let output = run(&["monitor", &topic, "--every", "-1", "-e"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--every -1: give seconds >= 0"));
}

/// An unreachable broker is given up on within --broker-timeout, said once.
#[test]
fn broker_timeout_bounds_the_start_and_says_so_once() {
    let output = run(&[
        "-b",
        "127.0.0.1:1",
        "print",
        "unreachable",
        "--broker-timeout",
        "2",
        "-e",
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach Kafka at 127.0.0.1:1 within 2s"),
        "{err}"
    );
    assert!(err.matches("all brokers are down").count() <= 2, "{err}");
    // The last line names the cause, not librdkafka's count of brokers down.
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("Connection refused"), "{err}");
}

/// filter's outputs get the input's partitions, and none is made for a missing input.
#[test]
fn filter_outputs_take_the_inputs_partitions() {
    let input = topic("filter-parts");
    let out = format!("{input}-out");
    ok(&["send", &input, "12", "--no-stamps", "--partitions", "3"]);
    ok(&[
        "filter", &input, "--where", "true", "--to", &out, "-e", "-g", &input,
    ]);
    let partitions: std::collections::BTreeSet<i32> =
        read_committed(&out).iter().map(|m| m.partition).collect();
    assert!(
        partitions.len() > 1,
        "keyless alerts spread: {partitions:?}"
    );
    // Asking for another count on the existing output says what it has.
    let output = run(&["send", &out, "1", "--no-stamps", "--partitions", "5"]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "topic {out} exists with 3 partition(s), not the 5 asked for"
        )),
        "{err}"
    );
    let missing = topic("filter-missing");
    let never = format!("{missing}-out");
    let output = run(&[
        "filter",
        &missing,
        "--where",
        "true",
        "--to",
        &never,
        "-e",
        "--no-wait",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        !topic_exists(&never),
        "no output for an input that does not exist"
    );
    // Waiting for its input (the default), filter creates its output only
    // once the input exists, with the input's partitions.
    let late = topic("filter-late");
    let late_out = format!("{late}-out");
    let waiting = spawn(&[
        "filter", &late, "--where", "true", "--to", &late_out, "-e", "-g", &late,
    ]);
    let mut seen = Vec::new();
    waiting.wait_stderr(
        "the wait for the input",
        |l| l.contains("waiting for it"),
        &mut seen,
    );
    assert!(!topic_exists(&late_out), "output before its input");
    create_topic(&late, 3);
    let (status, _, err) = waiting.wait();
    assert!(status.success(), "{}", err.join("\n"));
    assert_eq!(partitions_of(&late_out), 3, "{}", err.join("\n"));
}

/// Alerts without a key go to every partition, not all to one.
#[test]
fn keyless_alerts_spread_over_the_partitions() {
    let topic = topic("spread");
    ok(&["send", &topic, "300", "--no-stamps", "--partitions", "3"]);
    let mut per_partition = BTreeMap::new();
    for line in json_lines(&ok(&["print", &topic, "--meta", "-e", "-g", &topic])) {
        *per_partition
            .entry(line["_kafka"]["partition"].as_i64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(per_partition.len(), 3, "{per_partition:?}");
    assert!(
        per_partition.values().all(|n| *n >= 50),
        "{per_partition:?}"
    );
}

/// Files of another schema sent schemaless are said to need the consumer's
/// --schema; the first visit of --repeat says when it starts.
#[test]
fn send_says_what_a_newcomer_would_otherwise_wonder_about() {
    let topic = topic("old-schema");
    let file = ztf_fixtures().join("v3.3_472263571115115000.avro");
    let output = run(&["send", &topic, "--alerts", file.to_str().unwrap()]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("another schema than the built-in ZTF 4.02 reader"),
        "{err}"
    );
    assert!(err.contains("--format container"), "{err}");
    let output = run(&[
        "send",
        &topic,
        "1",
        "--no-stamps",
        "--repeat",
        "--interval",
        "0.5",
        "--max-repeats",
        "1",
    ]);
    let err = stderr(&output);
    assert!(err.contains("first visit at"), "{err}");
    // One alert has no rate: "rate n/a", as the README says, and no MB/s
    // printed beside it.
    assert!(err.contains("(rate n/a: 1 only)"), "{err}");
    assert!(!err.contains("MB/s"), "{err}");
}

/// One manual page per subcommand; a reader that stops early is no error.
#[test]
fn manual_pages_per_subcommand_and_a_closed_pipe() {
    let page = ok(&["man", "send"]);
    assert!(page.contains(".TH alertstream-send 1"), "{}", &page[..200]);
    let footer = format!("\"alertstream-send {}\"", env!("CARGO_PKG_VERSION"));
    assert!(page.contains(&footer), "{}", &page[..200]);
    assert!(
        page.contains("simulate"),
        "send's own options are on its page"
    );
    let output = run(&["man", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    let mut child = alertstream()
        .arg("man")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is closed here, as `| head -c 16` closes it.
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}

/// Bad options are exit 2 with one line that says what to do.
#[test]
fn bad_options_are_exit_2_and_say_it_once() {
    let over_the_cluster = topic("replication-over-the-cluster");
    let cases: [(&[&str], &str); 11] = [
        (
            &["send", &over_the_cluster, "1", "--replication-factor", "9"],
            "Invalid replication factor",
        ),
        (
            &["-X", "ssl.ca.location=ca-missing.pem", "print", "x", "-e"],
            "ssl.ca.location=ca-missing.pem: cannot read it",
        ),
        (
            &["--metrics", "notaport", "print", "x", "-e"],
            "--metrics notaport: not a host:port",
        ),
        (
            &["print", "x", "--where", "candidate.magpsf", "-e"],
            "never true or false",
        ),
        (
            &["print", "x", "--where", "candidate.magpsf <", "-e"],
            "syntax error at column",
        ),
        (
            &["-X", "foo.bar=1", "print", "x", "-e"],
            "invalid Kafka property foo.bar=[redacted]: No such configuration property",
        ),
        (
            // librdkafka's reason ends in a line break: the message is one line.
            &["-X", "fetch.wait.max.ms=-5", "print", "x", "-e"],
            "outside allowed range 0..300000 (check -X options",
        ),
        (
            &[
                "send",
                "x",
                "--alerts",
                "tests/data/ztf",
                "--pace",
                "candidate.jd",
                "--interval",
                "5",
            ],
            "--interval",
        ),
        (
            &[
                "send",
                "x",
                "--alerts",
                "tests/data/ztf",
                "--pace",
                "candidate.bogus",
            ],
            "closest: candidate.",
        ),
        (
            // Without --repeat (or --simulate's grid) one visit goes: an
            // interval would be ignored.
            &["send", "x", "--alerts", "tests/data/ztf", "--interval", "5"],
            "--interval goes with --repeat",
        ),
        (
            &[
                "send",
                "x",
                "--alerts",
                "tests/data/ztf",
                "--max-repeats",
                "5",
            ],
            "--repeat",
        ),
    ];
    for (args, says) in cases {
        let output = run(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            err.to_lowercase().matches("syntax error").count() <= 1,
            "said once: {err}"
        );
    }
}

/// A replay's summary counts loops, not visits.
#[test]
fn a_replay_summary_counts_loops() {
    let topic = topic("replay-loops");
    let output = run(&[
        "send",
        &topic,
        "--alerts",
        "tests/data/ztf/v3.3_472263571115115000.avro",
        "--pace",
        "candidate.jd",
        "--format",
        "container",
    ]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("sent 1 replay loop(s)"), "{err}");
}

/// Ctrl-C is nothing an operator acts on: said at info, not as a warning.
#[test]
fn an_interrupt_is_not_a_warning() {
    let topic = topic("interrupt");
    let send = spawn(&[
        "send",
        &topic,
        "1",
        "--no-stamps",
        "--repeat",
        "--interval",
        "30",
        "--max-repeats",
        "2",
    ]);
    let mut log = Vec::new();
    send.wait_stderr(
        "the first visit",
        |l| l.contains("visit 1/2: 1 alert(s) delivered"),
        &mut log,
    );
    signal(send.child.id(), "INT");
    let (status, _, rest) = send.wait();
    log.extend(rest);
    assert!(status.success(), "{log:?}");
    assert!(log.iter().any(|l| l.contains("interrupted")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("WARN")), "{log:?}");
}

/// ALERTSTREAM_SHARD_SLOT in the environment (a stack file sets it for
/// every service) does not stop a plain send; --shard-slot on the command
/// line without --simulate is still refused.
#[test]
fn a_shard_slot_in_the_environment_leaves_a_plain_send_alone() {
    let topic = topic("shard-env");
    let output = alertstream()
        .args(["send", &topic, "1", "--no-stamps"])
        .env("ALERTSTREAM_SHARD_SLOT", "2/3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&["send", &topic, "1", "--shard-slot", "2/3"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--shard-slot goes with --simulate"));
}
