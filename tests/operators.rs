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
