//! The operators' kit: completions, man page, compose files, the README's
//! commands, and friendly failures.

mod common;

use std::process::Command;

use common::*;

const SHELLS: [(&str, &str); 5] = [
    ("bash", "alertstream.bash"),
    ("zsh", "_alertstream"),
    ("fish", "alertstream.fish"),
    ("elvish", "alertstream.elv"),
    ("powershell", "_alertstream.ps1"),
];

#[test]
fn checked_in_completions_match_the_cli() {
    for (shell, file) in SHELLS {
        let generated = ok(&["completions", shell]);
        let checked_in = std::fs::read_to_string(root().join("completions").join(file)).unwrap();
        assert!(
            generated == checked_in,
            "completions/{file} is out of date: run scripts/completions"
        );
    }
}

#[test]
fn man_page_renders() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("alertstream.1");
    std::fs::write(&page, ok(&["man"])).unwrap();
    let output = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man (man-db) is needed to render the page");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "NAME",
        "SYNOPSIS",
        "alertstream",
        "--brokers",
        "send",
        "monitor",
    ] {
        assert!(text.contains(needle), "man page lacks {needle}:\n{text}");
    }
}

#[test]
fn compose_and_stack_files_parse() {
    for file in ["compose.yaml", "swarm/stack.yaml"] {
        let output = Command::new("docker-compose")
            .current_dir(root())
            .args(["-f", file, "config", "--quiet"])
            .output()
            .expect("docker-compose (Debian package) is needed to check the compose files");
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every `alertstream ...` command in the README names a real subcommand and
/// real flags, and every script it runs exists.
#[test]
fn readme_commands_exist() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let global_help = ok(&["--help"]);
    let mut checked = 0;
    let mut in_code = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let command = line.split(" #").next().unwrap().trim();
        let command = command.trim_start_matches("$ ");
        if let Some(script) = command
            .strip_prefix("scripts/")
            .filter(|s| !s.starts_with(' '))
        {
            let name = script
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(';');
            assert!(
                root().join("scripts").join(name).is_file(),
                "README runs missing scripts/{name}"
            );
            continue;
        }
        let Some(rest) = command.strip_prefix("alertstream ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let subcommand = words
            .iter()
            .scan(false, |skip, w| {
                let this = if *skip { None } else { Some(*w) };
                *skip = matches!(*w, "-b" | "-X" | "--kafka-config" | "--brokers" | "--kafka");
                Some(this)
            })
            .flatten()
            .find(|w| !w.starts_with('-'))
            .unwrap_or_else(|| panic!("no subcommand in README line: {line}"));
        let output = run(&[subcommand, "--help"]);
        assert!(
            output.status.success(),
            "README uses unknown subcommand '{subcommand}': {line}"
        );
        let help = String::from_utf8_lossy(&output.stdout).into_owned() + &global_help;
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.contains(flag),
                "README line uses {flag}, unknown to '{subcommand}': {line}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} README commands found");
}

#[test]
fn every_subcommand_help_has_examples() {
    for subcommand in ["send", "print", "monitor", "view", "completions", "man"] {
        let help = ok(&[subcommand, "--help"]);
        assert!(
            help.contains("Examples:"),
            "{subcommand} --help has no examples"
        );
    }
}

#[test]
fn unknown_topic_fails_with_no_wait() {
    let topic = topic("absent");
    for command in ["print", "monitor"] {
        let output = run(&[command, &topic, "--no-wait", "-e"]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let log = stderr(&output);
        assert!(
            log.contains(&topic) && log.contains("does not exist"),
            "{command}: {log}"
        );
    }
    // -v is alertstream's debug lines, as its help says.
    let output = run(&["-v", "print", &topic, "--no-wait"]);
    assert!(
        stderr(&output).contains(" DEBUG alertstream::"),
        "{}",
        stderr(&output)
    );
    let help = ok(&["--help"]);
    assert!(help.contains("-v alertstream's debug lines"), "{help}");
}

#[test]
fn print_waits_for_a_topic_created_later() {
    let topic = topic("later");
    let print = spawn(&["print", &topic, "--group", "w", "-e"]);
    let mut seen = Vec::new();
    print.wait_stderr(
        "the waiting message",
        |l| l.contains("does not exist"),
        &mut seen,
    );
    ok(&["send", &topic]);
    // -e: it exits by itself once the new topic's alerts are printed.
    let mut lines = Vec::new();
    while lines.len() < 12 {
        lines.push(print.stdout.recv_timeout(RUN_LIMIT).expect("an alert line"));
    }
    let output = wait_with_limit(print.child, RUN_LIMIT);
    assert!(output.status.success());
    assert_eq!(lines.len(), 12);
    // The missing topic is said once, not once per metadata refresh.
    seen.extend(print.stderr.iter());
    let warnings: Vec<&String> = seen.iter().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
}

/// A visit a stop request cuts short says so, with what was planned, and
/// no overrun of the interval is reported for it: there is no next visit.
#[test]
fn a_visit_cut_short_by_a_stop_says_so() {
    let topic = topic("cut-short");
    let send = spawn(&[
        "send",
        &topic,
        "50000",
        "--repeat",
        "--interval",
        "1",
        "--max-repeats",
        "3",
    ]);
    let mut seen = Vec::new();
    send.wait_stderr(
        "the first visit",
        |l| l.contains("visit 1/3: sending 50000"),
        &mut seen,
    );
    let (_, _, rest) = send.terminate();
    let log = seen.into_iter().chain(rest).collect::<Vec<_>>().join("\n");
    let visit = log
        .lines()
        .find(|l| l.contains("visit 1/3:") && l.contains("delivered in"))
        .unwrap_or_else(|| panic!("no visit line:\n{log}"));
    assert!(
        visit.ends_with("; cut short by the stop request (50000 planned)"),
        "{visit}"
    );
    assert!(!log.contains("overran"), "{log}");
}

#[test]
fn interrupting_send_reports_what_was_acknowledged() {
    let topic = topic("interrupt");
    let send = spawn(&[
        "send",
        &topic,
        "5",
        "--repeat",
        "--interval",
        "0.2",
        "--max-repeats",
        "10000",
    ]);
    let mut seen = Vec::new();
    send.wait_stderr(
        "a second visit",
        |l| l.contains("visit 2/10000: 5 alert(s) delivered"),
        &mut seen,
    );
    let (status, _, rest) = send.terminate();
    let log = seen.into_iter().chain(rest).collect::<Vec<_>>().join("\n");
    assert!(status.success(), "{status}\n{log}");
    let summary = log
        .lines()
        .find(|l| l.contains("interrupted after"))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    assert!(
        summary.contains("0 failed (refused), 0 unknown") && summary.contains(", 0 not sent"),
        "{summary}"
    );
    // The summary's count is what the topic holds.
    let delivered: usize = summary
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("count in {summary}"));
    let printed = json_lines(&ok(&["print", &topic, "--group", "count", "-e"]));
    assert_eq!(printed.len(), delivered);
}

/// Every default the README states is what an empty command line of that
/// subcommand parses to: each README phrase is looked up (line breaks
/// aside) and the parsed value compared, so neither can change alone.
#[test]
fn every_default_the_readme_states_is_the_clis() {
    use alertstream::cli::{ArchiveFormat, Cli, Command, ReadFormat, WireFormat};
    use clap::Parser;

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let parse = |line: &str| {
        let argv = std::iter::once("alertstream").chain(line.split_whitespace());
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    };
    let mut checked = 0;
    let mut says = |phrase: &str, holds: bool| {
        assert!(
            flat.contains(phrase),
            "the README no longer says {phrase:?}"
        );
        assert!(holds, "the README says {phrase:?}; the CLI disagrees");
        checked += 1;
    };

    let Command::Send(send) = parse("send t") else {
        panic!("send")
    };
    says(
        "`schemaless` (default, the original's)",
        matches!(send.format, WireFormat::Schemaless),
    );
    use alertstream::commands::send::DEFAULT_VISITS;
    use alertstream::schedule::DEFAULT_INTERVAL;
    says(
        "(default 39, fractions allowed)",
        send.interval.is_none() && DEFAULT_INTERVAL == 39.0,
    );
    says(
        "`--max-repeats` visits (default 2215)",
        send.max_repeats.is_none() && DEFAULT_VISITS == 2215,
    );
    says(
        "`--flush-timeout SECONDS` (default 8,",
        send.flush_timeout == 8.0,
    );
    says("`--partitions` (default 1)", send.partitions.is_none());
    says("By default alerts carry no key", send.key.is_none());

    let Command::Print(print) = parse("print t") else {
        panic!("print")
    };
    says(
        "(default auto): how",
        matches!(print.read.format, ReadFormat::Auto),
    );
    says(
        "`--max-alert-bytes N` (default `16M`;",
        print.read.max_alert_bytes == "16M",
    );
    says(
        "`--broker-timeout SECONDS` (default 60)",
        print.consumer.broker_timeout == 60.0,
    );

    let Command::Monitor(monitor) = parse("monitor t") else {
        panic!("monitor")
    };
    says(
        "Every `--every` seconds (default 10;",
        monitor.every == 10.0,
    );

    let Command::View(view) = parse("view t") else {
        panic!("view")
    };
    says("`--keep` alerts (default 2,000)", view.keep == 2000);
    says(
        "`--keep-bytes` of messages (default 192M;",
        view.keep_bytes == "192M",
    );
    says(
        "at `--listen` (default 127.0.0.1:8080)",
        view.listen == "127.0.0.1:8080",
    );

    let Command::Record(record) = parse("record t --out d") else {
        panic!("record")
    };
    says(
        "`--format avro` (default)",
        matches!(record.format, ArchiveFormat::Avro),
    );
    says(
        "`--roll-alerts` (10,000), `--roll-seconds` (3600) or `--roll-bytes` (256M)",
        record.roll_alerts == 10_000
            && record.roll_seconds == 3600.0
            && record.roll_bytes == "256M",
    );

    let Command::Filter(filter) = parse("filter t --where true --to u") else {
        panic!("filter")
    };
    says(
        "every `--commit-interval` (0.5 s)",
        filter.commit_interval == 0.5,
    );

    let Command::Simulate(simulate) = parse("simulate ztf --out d") else {
        panic!("simulate")
    };
    says("COUNT alerts (default 10,000)", simulate.count == 10_000);
    assert_eq!(checked, 17);
}

/// The status line of a GET over plain HTTP/1.1.
fn http_status(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or("").to_string()
}

/// Every environment variable the README names is read: the brokers, the
/// metrics address, the schema registry and view's token (the shard slot:
/// tests/newcomer.rs).
#[test]
fn the_environment_variables_the_readme_names_are_read() {
    use std::io::BufRead;
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for name in [
        "ALERTSTREAM_BROKERS",
        "ALERTSTREAM_METRICS",
        "ALERTSTREAM_SCHEMA_REGISTRY",
        "ALERTSTREAM_VIEW_TOKEN",
        "ALERTSTREAM_SHARD_SLOT",
    ] {
        assert!(readme.contains(name), "the README no longer names {name}");
    }
    let with_env = |name: &str, value: &str, args: &[&str]| {
        let output = alertstream().env(name, value).args(args).output().unwrap();
        (output.status.code(), stderr(&output))
    };

    let (code, log) = with_env(
        "ALERTSTREAM_BROKERS",
        "127.0.0.1:1",
        &["print", "t", "--no-wait", "--broker-timeout", "1"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("127.0.0.1:1"), "{log}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let topic = topic("env");
    let (code, log) = with_env(
        "ALERTSTREAM_METRICS",
        &address,
        &["send", &topic, "1", "--no-stamps"],
    );
    assert_eq!(code, Some(1), "a port in use: {log}");
    assert!(log.contains(&address), "{log}");

    let (code, log) = with_env(
        "ALERTSTREAM_SCHEMA_REGISTRY",
        "http://127.0.0.1:1",
        &["send", &topic, "1", "--no-stamps", "--format", "confluent"],
    );
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("127.0.0.1:1"), "{log}");

    ok(&["send", &topic, "1", "--no-stamps"]);
    let mut view = alertstream()
        .env("ALERTSTREAM_VIEW_TOKEN", "from-the-env")
        .args(["view", &topic, "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(view.stderr.take().unwrap()).lines();
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("view on http://"))
        .expect("view's address line");
    let address = serving[serving.find("http://").unwrap() + 7..]
        .split(['/', ' '])
        .next()
        .unwrap()
        .to_string();
    let without = http_status(&address, "/api/stats");
    let with = http_status(&address, "/api/stats?token=from-the-env");
    let _ = view.kill();
    let _ = view.wait();
    assert!(without.contains(" 401 "), "{without}");
    assert!(with.contains(" 200 "), "{with}");
}
