//! The README's examples are tests (issue 24): every command line of its
//! shell blocks is read at test time and run, in README order, against the
//! test broker and registry, so an example that stops working fails CI.
//!
//! - `alertstream ...` lines run as argv, after the rewrites of [`REWRITES`]
//!   (unique topics, real folders for placeholders, long-running forms
//!   bounded, large counts scaled down); each must exit 0 (or the code the
//!   README gives it, [`expected_code`]) and, when it succeeds, log no WARN
//!   or ERROR line (the README: every such line is one an operator should
//!   act on).
//! - A topic that an example reads before any earlier example wrote to it is
//!   first filled as [`SEEDS`] says (the stream the README takes as given).
//! - Other programs are skipped only by [`SKIPPED`], each with its reason;
//!   a line starting with anything else fails, so that a new kind of example
//!   is never skipped silently.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The most one example may take; beyond it the example is killed and fails.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(60);

/// Subcommands whose first positional is a topic.
const TOPIC_COMMANDS: &[&str] = &["send", "print", "monitor", "record", "filter", "view"];
/// Subcommands that consume (and wait for more unless bounded).
const CONSUMERS: &[&str] = &["print", "monitor", "record", "filter", "view"];
/// Subcommands without a topic.
const OTHER_COMMANDS: &[&str] = &["simulate", "completions", "man", "help"];

/// Options that take no value (every other option takes one).
const FLAGS: &[&str] = &[
    "-e",
    "--exit-at-end",
    "--repeat",
    "--meta",
    "--no-stamps",
    "--encode-off",
    "--decode-off",
    "--no-wait",
    "-q",
    "--quiet",
    "--verbose",
    "-h",
    "--help",
    "-V",
    "--version",
];

/// Programs other than alertstream that README examples run, by first word,
/// and why the test does not run them.
const SKIPPED: &[(&str, Skip)] = &[
    (
        "scripts/demo",
        Skip::Reason(
            "starts a broker of its own and a release build; the suite covers what it shows",
        ),
    ),
    ("scripts/test", Skip::Reason("runs this very suite")),
    (
        "scripts/kafka",
        Skip::Reason(
            "starts, stops and kills the shared broker every test runs against; \
             tests/failures.rs drives it",
        ),
    ),
    (
        "scripts/registry",
        Skip::Reason("starts and stops the shared schema registry; tests/registry.rs uses it"),
    ),
    (
        "docker",
        Skip::Reason(
            "no Docker engine runs in CI; tests/deployment.rs checks compose.yaml and \
             swarm/stack.yaml",
        ),
    ),
    (
        "cargo",
        Skip::Reason("building is what the test harness has just done"),
    ),
    (
        "man",
        Skip::Reason(
            "a pager for `alertstream man`'s output, which is run (and must print something)",
        ),
    ),
    (
        "mkdir",
        Skip::Reason("makes the folders in $HOME that completion scripts are copied into"),
    ),
    (
        "cp",
        Skip::Installs(
            "installs a completion script into $HOME; not run, but the script it names must \
             be in the repo",
        ),
    ),
    (
        "cat",
        Skip::Installs(
            "appends a completion script to a shell's rc file in $HOME; the script must be in \
             the repo",
        ),
    ),
    (
        ".",
        Skip::Installs(
            "sources a completion script into the shell; the script must be in the repo",
        ),
    ),
];

#[derive(Debug, Clone, Copy)]
enum Skip {
    /// Not run at all.
    Reason(&'static str),
    /// Not run (it writes outside the test), but every file it names under
    /// `completions/` must exist in the repo.
    Installs(&'static str),
}

/// Examples the README documents as failing, by their text: (text, code, the
/// README's reason). A trailing `# ... exits N` comment on the line says the
/// same. None today.
const EXPECTED: &[(&str, i32, &str)] = &[];

/// Topics examples read before any earlier example writes to them: how the
/// test fills each first, and why that way.
const SEEDS: &[(&str, &str, Seed)] = &[
    (
        "ztf",
        "ZTF's own stream: the real ZTF packets of tests/data/ztf, framed as ZTF frames them \
         (containers)",
        |_| {
            let ztf = ztf_fixtures();
            vec![
                "--alerts".into(),
                ztf.to_str().unwrap().into(),
                "--format".into(),
                "container".into(),
            ]
        },
    ),
    (
        "alerts-simulated",
        "Rubin's stream: Confluent-framed Rubin 11.1 alerts whose writer schema is in the registry",
        |run| {
            vec![
                "20".into(),
                "--simulate".into(),
                "rubin".into(),
                "--schema".into(),
                run.rubin_schema("11/1"),
                "--format".into(),
                "confluent".into(),
                "--schema-registry".into(),
                run.registry.clone(),
            ]
        },
    ),
    (
        "ztf-night",
        "a night to record: one visit of the built-in samples",
        |_| vec![],
    ),
];

/// The arguments of `send TOPIC ...` after the topic.
type Seed = fn(&mut Run) -> Vec<String>;

/// What the test changes in an example before running it, in this order:
/// (what, why, how).
const REWRITES: &[(&str, &str, Rewrite)] = &[
    (
        "TOPIC of send/print/monitor/record/filter, and every --to",
        "a unique topic per name and run (common::topic): the same README name is the same \
         topic within the run, so a send feeds the prints after it, and nothing is left over \
         from earlier runs or other tests",
        rewrite_topics,
    ),
    (
        "view: every TOPIC, and --listen",
        "every topic as for the other commands; --listen 127.0.0.1:0, a free port (the page's \
         address is read from view's log): view serves until stopped, so the test asks the \
         page's /api/stats for every topic named (with the --token given, if any), then stops \
         view with SIGTERM, which must exit 0",
        rewrite_view,
    ),
    (
        "COUNT of 1000 or more",
        "200: the suite stays quick (a visit of 10,000 simulated alerts takes a minute in a \
         debug build); the example still sends or writes a visit of that shape",
        rewrite_count,
    ),
    (
        "simulate --visits N above 2",
        "2: more than one visit still shows the visits following each other",
        rewrite_visits,
    ),
    (
        "--spread SECONDS above 2",
        "2: the bursts are still spread out, in less time",
        rewrite_spread,
    ),
    (
        "--repeat",
        "--max-repeats 1 (set or replaced; default 2215 visits, ~24 h) and, unless --interval \
         or --pace is given, --interval 1 (default 39 s to the next tick)",
        rewrite_repeat,
    ),
    (
        "print/monitor/record/filter without -e, --max-messages or --until (not view: stopped \
         by the test)",
        "-e appended: they would wait for more alerts forever",
        rewrite_exit_at_end,
    ),
    (
        "--schema DIR, --schema .../schema/M/m",
        "lsst-alert-packet's schema folder M/m (DIR: 11/1) from the venv: Rubin's GPL schemas \
         are not shipped here",
        rewrite_schema,
    ),
    (
        "--schema-dir .../lsst/alert/packet/schema",
        "lsst-alert-packet's schema folder in the venv the tests use (any Python version)",
        rewrite_schema_dir,
    ),
    (
        "--schema-registry URL",
        "the test registry, $ALERTSTREAM_REGISTRY (default http://127.0.0.1:8081/apis/ccompat/v7)",
        rewrite_registry,
    ),
    (
        "-b/--brokers LIST",
        "the test broker, $ALERTSTREAM_BROKERS (also passed in the environment)",
        rewrite_brokers,
    ),
    (
        "--kafka-config FILE",
        "a file in the temporary folder with a harmless property (client.id): the README's \
         SASL_SSL settings need a SASL listener, which tests/security.rs covers",
        rewrite_kafka_config,
    ),
    (
        "--alerts ztf/",
        "tests/data/ztf, the real ZTF packets",
        rewrite_ztf_alerts,
    ),
    (
        "--from/--until RFC 3339 times (a past night)",
        "the window of this run (its start to now): the README's night holds nothing on the \
         test broker, and the replay after it needs what was recorded",
        rewrite_window,
    ),
    (
        "DIR, FILE, relative folders (archive/, stamps/, fixtures/, night/, lake/, ...), ~/...",
        "folders of one temporary folder per run (which is also the working directory): the \
         same name is the same folder, so send --alerts archive/ reads what record --out \
         archive/ wrote",
        rewrite_folders,
    ),
];

type Rewrite = fn(&mut Run, &mut Cmd);

/// A command line of a README shell block.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    /// 1-based line number in README.md (its first line, if continued).
    number: usize,
    /// The command as written, continuations joined, comment dropped.
    text: String,
    /// The trailing `# comment`, if any.
    comment: String,
}

/// Every command line of the fenced sh/bash/shell/console blocks.
fn shell_lines(readme: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut fence: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in readme.lines().enumerate() {
        let trimmed = raw.trim();
        match &fence {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    fence = Some(info.trim().to_string());
                }
                continue;
            }
            Some(_) if trimmed == "```" => {
                assert!(
                    pending.is_none(),
                    "README.md:{}: a shell block ends inside a continued line",
                    i + 1
                );
                fence = None;
                continue;
            }
            Some(info) => {
                let lang = info.split_whitespace().next().unwrap_or("");
                if !["sh", "bash", "shell", "console"].contains(&lang) {
                    continue;
                }
                let text = if lang == "console" && pending.is_none() {
                    // Only prompt lines are commands; the rest is output.
                    match trimmed.strip_prefix("$ ") {
                        Some(command) => command,
                        None => continue,
                    }
                } else {
                    trimmed
                };
                let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
                if let Some(head) = text.strip_suffix('\\') {
                    joined.push_str(head);
                    pending = Some((start, joined));
                    continue;
                }
                joined.push_str(text);
                let (command, comment) = split_comment(&joined);
                if !command.is_empty() {
                    lines.push(Line {
                        number: start,
                        text: command,
                        comment,
                    });
                }
            }
        }
    }
    lines
}

/// (command, comment): a `#` outside quotes, at the start or after a space, starts a comment.
fn split_comment(line: &str) -> (String, String) {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => {
                return (
                    line[..i].trim().to_string(),
                    line[i + 1..].trim().to_string(),
                );
            }
            _ => {}
        }
        previous = c;
    }
    (line.trim().to_string(), String::new())
}

/// A command of a line split at `;`, `&&`, `||` and `|` outside quotes;
/// `piped` when its stdout goes to the next command.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    text: String,
    piped: bool,
}

fn segments(line: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut chars = line.chars().peekable();
    let mut push = |current: &mut String, piped: bool| {
        let text = current.trim().to_string();
        if !text.is_empty() {
            out.push(Segment { text, piped });
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, ';') => push(&mut current, false),
            (None, '&') if chars.peek() == Some(&'&') => {
                chars.next();
                push(&mut current, false);
            }
            (None, '|') if chars.peek() == Some(&'|') => {
                chars.next();
                push(&mut current, false);
            }
            (None, '|') => push(&mut current, true),
            _ => current.push(c),
        }
    }
    push(&mut current, false);
    out
}

/// Splits a command into words as a POSIX shell does for the forms README
/// examples use: single quotes (literal), double quotes (backslash escapes
/// `"`, `\`, `$`, `` ` ``), backslash outside quotes. Expansions, globs and
/// redirections are refused: the test would run something else than the README shows.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in: {text}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in: {text}")),
                        },
                        Some(c @ ('$' | '`')) => {
                            return Err(format!("expansion {c} in double quotes in: {text}"))
                        }
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in: {text}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing backslash in: {text}")),
                }
            }
            '$' | '`' | '>' | '<' | '&' | '*' | '?' | '(' | ')' | '{' | '}' => {
                return Err(format!(
                    "shell syntax {c:?} outside quotes, which the test does not run: {text}"
                ))
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A word of a command line after the program name.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// `--name value`, `--name=value` (`equals`) or a flag (no value).
    Opt {
        name: String,
        value: Option<String>,
        equals: bool,
    },
    Pos(String),
}

/// An alertstream command line: options before the subcommand, the
/// subcommand, and what follows it.
#[derive(Debug, Clone)]
struct Cmd {
    globals: Vec<Item>,
    sub: String,
    items: Vec<Item>,
}

fn is_flag(word: &str) -> bool {
    FLAGS.contains(&word) || (word.len() > 1 && word[1..].chars().all(|c| c == 'v'))
}

fn parse_items(words: &[String]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word.len() > 1 && word.starts_with('-') {
            if let Some((name, value)) = word.split_once('=').filter(|_| word.starts_with("--")) {
                items.push(Item::Opt {
                    name: name.into(),
                    value: Some(value.into()),
                    equals: true,
                });
            } else if is_flag(word) {
                items.push(Item::Opt {
                    name: word.clone(),
                    value: None,
                    equals: false,
                });
            } else {
                items.push(Item::Opt {
                    name: word.clone(),
                    value: words.next().cloned(),
                    equals: false,
                });
            }
        } else {
            items.push(Item::Pos(word.clone()));
        }
    }
    items
}

impl Cmd {
    /// `words` without the program name.
    fn parse(words: &[String]) -> Result<Self, String> {
        let items = parse_items(words);
        let at = items
            .iter()
            .position(|i| matches!(i, Item::Pos(_)))
            .ok_or("no subcommand")?;
        let Item::Pos(sub) = items[at].clone() else {
            unreachable!()
        };
        if !TOPIC_COMMANDS.contains(&sub.as_str()) && !OTHER_COMMANDS.contains(&sub.as_str()) {
            return Err(format!(
                "subcommand {sub:?} is new to this test: say in TOPIC_COMMANDS or \
                 OTHER_COMMANDS whether its first positional is a topic"
            ));
        }
        Ok(Self {
            globals: items[..at].to_vec(),
            sub,
            items: items[at + 1..].to_vec(),
        })
    }

    fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        let mut put = |item: &Item| match item {
            Item::Opt {
                name,
                value: Some(value),
                equals: true,
            } => argv.push(format!("{name}={value}")),
            Item::Opt { name, value, .. } => {
                argv.push(name.clone());
                argv.extend(value.clone());
            }
            Item::Pos(p) => argv.push(p.clone()),
        };
        self.globals.iter().for_each(&mut put);
        put(&Item::Pos(self.sub.clone()));
        self.items.iter().for_each(&mut put);
        argv
    }

    /// The index in `items` of the n-th (0-based) positional.
    fn positional(&self, n: usize) -> Option<usize> {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i, Item::Pos(_)))
            .nth(n)
            .map(|(at, _)| at)
    }

    fn has(&self, names: &[&str]) -> bool {
        self.items
            .iter()
            .chain(&self.globals)
            .any(|i| matches!(i, Item::Opt { name, .. } if names.contains(&name.as_str())))
    }

    /// Every option value of `names`, in place, with the option's name.
    fn values_mut<'a>(
        &'a mut self,
        names: &'a [&'a str],
    ) -> impl Iterator<Item = &'a mut String> + 'a {
        self.globals
            .iter_mut()
            .chain(self.items.iter_mut())
            .filter_map(move |i| match i {
                Item::Opt {
                    name,
                    value: Some(value),
                    ..
                } if names.contains(&name.as_str()) => Some(value),
                _ => None,
            })
    }

    fn set_or_append(&mut self, name: &str, value: &str) {
        let mut found = false;
        for v in self.values_mut(&[name]) {
            *v = value.to_string();
            found = true;
        }
        if !found {
            self.items.push(Item::Opt {
                name: name.into(),
                value: Some(value.into()),
                equals: false,
            });
        }
    }

    fn topic(&self) -> Option<String> {
        if !TOPIC_COMMANDS.contains(&self.sub.as_str()) {
            return None;
        }
        match &self.items[self.positional(0)?] {
            Item::Pos(t) => Some(t.clone()),
            Item::Opt { .. } => None,
        }
    }
}

/// The state of one run through the README.
struct Run {
    dir: tempfile::TempDir,
    topics: HashMap<String, String>,
    /// README topic names some earlier example (or seed) wrote to.
    written: HashSet<String>,
    started_ms: i64,
    registry: String,
    rubin_root: Option<PathBuf>,
}

impl Run {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            topics: HashMap::new(),
            written: HashSet::new(),
            started_ms: alertstream::time::now_ms(),
            registry: std::env::var("ALERTSTREAM_REGISTRY")
                .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into()),
            rubin_root: None,
        }
    }

    fn topic(&mut self, name: &str) -> String {
        self.topics
            .entry(name.to_string())
            .or_insert_with(|| topic(&format!("readme-{name}")))
            .clone()
    }

    /// lsst-alert-packet's schema folder `version` ("11/1"), or its root ("").
    fn rubin_schema(&mut self, version: &str) -> String {
        let root = self.rubin_root.get_or_insert_with(|| {
            PathBuf::from(python_script("registry_peer.py", &["schema-root"]).trim())
        });
        root.join(version).to_str().unwrap().to_string()
    }

    fn path(&self, relative: &str) -> String {
        let path = self.dir.path().join(relative.trim_end_matches('/'));
        let mut text = path.to_str().unwrap().to_string();
        if relative.ends_with('/') {
            text.push('/');
        }
        text
    }
}

fn rewrite_topics(run: &mut Run, cmd: &mut Cmd) {
    if TOPIC_COMMANDS.contains(&cmd.sub.as_str()) {
        if let Some(at) = cmd.positional(0) {
            if let Item::Pos(name) = cmd.items[at].clone() {
                cmd.items[at] = Item::Pos(run.topic(&name));
            }
        }
        let names: Vec<String> = cmd.values_mut(&["--to"]).map(|v| v.clone()).collect();
        let unique: Vec<String> = names.iter().map(|n| run.topic(n)).collect();
        for (v, u) in cmd.values_mut(&["--to"]).zip(unique) {
            *v = u;
        }
    }
}

fn rewrite_view(run: &mut Run, cmd: &mut Cmd) {
    if cmd.sub != "view" {
        return;
    }
    for n in 1.. {
        let Some(at) = cmd.positional(n) else { break };
        if let Item::Pos(name) = cmd.items[at].clone() {
            cmd.items[at] = Item::Pos(run.topic(&name));
        }
    }
    cmd.set_or_append("--listen", "127.0.0.1:0");
}

fn rewrite_count(_: &mut Run, cmd: &mut Cmd) {
    if ["send", "simulate"].contains(&cmd.sub.as_str()) {
        if let Some(at) = cmd.positional(1) {
            if let Item::Pos(count) = &mut cmd.items[at] {
                if count.parse::<u64>().is_ok_and(|n| n >= 1000) {
                    *count = "200".into();
                }
            }
        }
    }
}

fn cap(cmd: &mut Cmd, option: &str, most: f64) {
    for v in cmd.values_mut(&[option]) {
        if v.parse::<f64>().is_ok_and(|n| n > most) {
            *v = most.to_string();
        }
    }
}

fn rewrite_visits(_: &mut Run, cmd: &mut Cmd) {
    cap(cmd, "--visits", 2.0);
}

fn rewrite_spread(_: &mut Run, cmd: &mut Cmd) {
    cap(cmd, "--spread", 2.0);
}

fn rewrite_repeat(_: &mut Run, cmd: &mut Cmd) {
    if cmd.has(&["--repeat"]) {
        cmd.set_or_append("--max-repeats", "1");
        if !cmd.has(&["--interval", "--pace"]) {
            cmd.set_or_append("--interval", "1");
        }
    }
}

fn rewrite_exit_at_end(_: &mut Run, cmd: &mut Cmd) {
    // view is stopped by the test once its page answers.
    if CONSUMERS.contains(&cmd.sub.as_str())
        && cmd.sub != "view"
        && !cmd.has(&["-e", "--exit-at-end", "--max-messages", "--until"])
    {
        cmd.items.push(Item::Opt {
            name: "-e".into(),
            value: None,
            equals: false,
        });
    }
}

fn rewrite_schema(run: &mut Run, cmd: &mut Cmd) {
    let values: Vec<String> = cmd.values_mut(&["--schema"]).map(|v| v.clone()).collect();
    let mut new = Vec::new();
    for v in values {
        let parts: Vec<&str> = v.trim_end_matches('/').rsplitn(4, '/').collect();
        new.push(if v == "DIR" {
            run.rubin_schema("11/1")
        } else if parts.len() >= 3
            && parts[2] == "schema"
            && parts[..2].iter().all(|p| p.parse::<u32>().is_ok())
        {
            run.rubin_schema(&format!("{}/{}", parts[1], parts[0]))
        } else {
            v
        });
    }
    for (v, n) in cmd.values_mut(&["--schema"]).zip(new) {
        *v = n;
    }
}

fn rewrite_schema_dir(run: &mut Run, cmd: &mut Cmd) {
    if cmd.has(&["--schema-dir"]) {
        let root = run.rubin_schema("");
        for v in cmd.values_mut(&["--schema-dir"]) {
            if v.trim_end_matches('/')
                .ends_with("lsst/alert/packet/schema")
            {
                *v = root.clone();
            }
        }
    }
}

fn rewrite_registry(run: &mut Run, cmd: &mut Cmd) {
    for v in cmd.values_mut(&["--schema-registry"]) {
        *v = run.registry.clone();
    }
}

fn rewrite_brokers(_: &mut Run, cmd: &mut Cmd) {
    for v in cmd.values_mut(&["-b", "--brokers"]) {
        *v = brokers();
    }
}

fn rewrite_kafka_config(run: &mut Run, cmd: &mut Cmd) {
    if cmd.has(&["--kafka-config"]) {
        let file = run.dir.path().join("client.properties");
        std::fs::write(
            &file,
            "# README example, on the plaintext test broker\nclient.id=alertstream-readme\n",
        )
        .unwrap();
        for v in cmd.values_mut(&["--kafka-config"]) {
            *v = file.to_str().unwrap().to_string();
        }
    }
}

fn rewrite_ztf_alerts(_: &mut Run, cmd: &mut Cmd) {
    for v in cmd.values_mut(&["--alerts"]) {
        if v.trim_end_matches('/') == "ztf" {
            *v = ztf_fixtures().to_str().unwrap().to_string();
        }
    }
}

fn rewrite_window(run: &mut Run, cmd: &mut Cmd) {
    let absolute = |v: &str| v.len() >= 20 && v.as_bytes()[4] == b'-' && v.contains('T');
    let from = alertstream::time::rfc3339_utc(run.started_ms - 1000);
    let until = alertstream::time::rfc3339_utc(alertstream::time::now_ms());
    for v in cmd.values_mut(&["--from"]) {
        if absolute(v) {
            *v = from.clone();
        }
    }
    for v in cmd.values_mut(&["--until"]) {
        if absolute(v) {
            *v = until.clone();
        }
    }
}

fn rewrite_folders(run: &mut Run, cmd: &mut Cmd) {
    let placeholder = |v: &str| {
        v == "DIR"
            || v == "FILE"
            || v.starts_with("~/")
            || (v.ends_with('/') && !v.starts_with('/') && !v.contains("://"))
    };
    let rewrite = |run: &Run, v: &mut String| {
        if placeholder(v) {
            let relative = v.strip_prefix("~/").map(|r| format!("home/{r}"));
            *v = run.path(relative.as_deref().unwrap_or(v));
        }
    };
    for item in cmd.globals.iter_mut().chain(cmd.items.iter_mut()) {
        if let Item::Opt {
            value: Some(v),
            name,
            ..
        } = item
        {
            if name.starts_with("--") {
                rewrite(run, v);
            }
        }
    }
}

/// The exit code the README gives an example: a trailing `# ... exit(s) N`
/// comment, or [`EXPECTED`]; else 0.
fn expected_code(line: &Line) -> (i32, String) {
    if let Some((_, code, why)) = EXPECTED.iter().find(|(text, ..)| *text == line.text) {
        return (*code, (*why).to_string());
    }
    let words: Vec<&str> = line
        .comment
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        if ["exit", "exits", "code"].contains(&pair[0]) {
            if let Ok(code) = pair[1].parse() {
                return (code, format!("README comment: {}", line.comment));
            }
        }
    }
    (0, String::new())
}

/// What happened to one example, for the summary.
struct Outcome {
    line: usize,
    what: String,
    seconds: f64,
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs argv (without the program name) in the run's folder within [`EXAMPLE_LIMIT`].
fn execute(run: &Run, argv: &[String]) -> (std::process::Output, f64) {
    let started = Instant::now();
    let child = alertstream()
        .args(argv)
        .current_dir(run.dir.path())
        .env_remove("ALERTSTREAM_SCHEMA_REGISTRY")
        .env_remove("ALERTSTREAM_METRICS")
        .env_remove("ALERTSTREAM_SHARD_SLOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alertstream");
    let output = wait_with_limit(child, EXAMPLE_LIMIT);
    (output, started.elapsed().as_secs_f64())
}

/// Runs a `view` example: waits for its page, asks `/api/stats` for the
/// topics it names, then stops it with SIGTERM (it serves until stopped).
fn execute_view(
    run: &Run,
    cmd: &Cmd,
    argv: &[String],
) -> Result<(std::process::Output, f64), String> {
    let started = Instant::now();
    let mut child = alertstream()
        .args(argv)
        .current_dir(run.dir.path())
        .env_remove("ALERTSTREAM_SCHEMA_REGISTRY")
        .env_remove("ALERTSTREAM_METRICS")
        .env_remove("ALERTSTREAM_VIEW_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alertstream");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let base = loop {
        match lines.recv_timeout(EXAMPLE_LIMIT.saturating_sub(started.elapsed())) {
            Ok(line) => {
                let base = line
                    .split("view on ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_string);
                seen.push(line);
                if let Some(base) = base {
                    break base;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "view never said where its page is; stderr:\n{}",
                    seen.join("\n")
                ));
            }
        }
    };
    let checked = check_view_page(&base, cmd);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut output = wait_with_limit(child, EXAMPLE_LIMIT);
    let _ = reader.join();
    seen.extend(lines.try_iter());
    output.stderr = seen.join("\n").into_bytes();
    checked?;
    Ok((output, started.elapsed().as_secs_f64()))
}

/// The page answers and lists every topic the command names.
fn check_view_page(base: &str, cmd: &Cmd) -> Result<(), String> {
    let token = cmd.items.iter().find_map(|i| match i {
        Item::Opt {
            name,
            value: Some(v),
            ..
        } if name == "--token" => Some(v.clone()),
        _ => None,
    });
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut request = agent.get(&format!("{base}api/stats"));
    if let Some(token) = &token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request
        .call()
        .map_err(|e| format!("{base}api/stats: {e}"))?;
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() != 200 {
        return Err(format!(
            "{base}api/stats answered {}: {body}",
            response.status()
        ));
    }
    let stats: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let listed: Vec<&str> = stats["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["topic"].as_str())
        .collect();
    for n in 0.. {
        let Some(at) = cmd.positional(n) else { break };
        if let Item::Pos(topic) = &cmd.items[at] {
            if !listed.contains(&topic.as_str()) {
                return Err(format!("the page does not list topic {topic}: {body}"));
            }
        }
    }
    Ok(())
}

/// Fills a README topic no example has written to yet, as [`SEEDS`] says.
fn seed(run: &mut Run, name: &str) -> Result<(), String> {
    let Some((_, why, args)) = SEEDS.iter().find(|(n, ..)| *n == name) else {
        return Err(format!(
            "reads topic {name:?}, which no earlier example writes to and SEEDS does not fill: \
             reorder the README or add a seed"
        ));
    };
    let mut argv = vec!["send".to_string(), run.topic(name)];
    argv.extend(args(run));
    let (output, _) = execute(run, &argv);
    if !output.status.success() {
        return Err(format!(
            "seeding {name:?} ({why}) with alertstream {} failed ({}):\n{}",
            argv.join(" "),
            output.status,
            tail(&stderr(&output), 20)
        ));
    }
    run.written.insert(name.to_string());
    Ok(())
}

/// Runs one alertstream command of a README line; Err says what went wrong.
fn run_alertstream(
    run: &mut Run,
    line: &Line,
    segment: &Segment,
    words: &[String],
) -> Result<f64, String> {
    let mut cmd = Cmd::parse(&words[1..])?;
    let topic = cmd.topic();
    if let Some(name) = &topic {
        if CONSUMERS.contains(&cmd.sub.as_str()) && !run.written.contains(name) {
            seed(run, name)?;
        }
    }
    for (_, _, rewrite) in REWRITES {
        rewrite(run, &mut cmd);
    }
    let argv = cmd.argv();
    let (expected, why) = expected_code(line);
    let (output, seconds) = if cmd.sub == "view" {
        execute_view(run, &cmd, &argv)?
    } else {
        execute(run, &argv)
    };
    let err = stderr(&output);
    let problem = if output.status.code() != Some(expected) {
        Some(format!(
            "exit {} where {expected} was expected{}{}",
            output.status.code().map_or_else(
                || format!("by signal (killed after {EXAMPLE_LIMIT:?}?)"),
                |c| c.to_string()
            ),
            if why.is_empty() { "" } else { ": " },
            why
        ))
    } else if expected == 0 {
        let loud: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        if !loud.is_empty() {
            Some(format!(
                "exit 0, but {} WARN/ERROR line(s), which the README says an operator should \
                 act on; the first:\n    {}",
                loud.len(),
                loud[0]
            ))
        } else if segment.piped && output.stdout.is_empty() {
            Some("exit 0, but nothing on stdout for the command it is piped into".into())
        } else {
            None
        }
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(format!(
            "{problem}\n  rewritten: alertstream {}\n  stderr (last lines):\n{}",
            argv.iter()
                .map(|a| if a.contains(' ') || a.is_empty() {
                    format!("'{a}'")
                } else {
                    a.clone()
                })
                .collect::<Vec<_>>()
                .join(" "),
            tail(&err, 15)
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    if let Some(name) = &topic {
        if cmd.sub == "send" {
            run.written.insert(name.clone());
        }
    }
    if cmd.sub == "filter" {
        let words = parse_items(&words[1..]);
        for item in words {
            if let Item::Opt {
                name,
                value: Some(to),
                ..
            } = item
            {
                if name == "--to" {
                    run.written.insert(to);
                }
            }
        }
    }
    Ok(seconds)
}

/// Handles one command of a line: runs it, checks it, or says why not.
fn handle(run: &mut Run, line: &Line, segment: &Segment) -> Result<String, String> {
    let first = segment.text.split_whitespace().next().unwrap_or("");
    if first == "alertstream" {
        let words = split_words(&segment.text)?;
        let seconds = run_alertstream(run, line, segment, &words)?;
        return Ok(format!("ran in {seconds:.1}s"));
    }
    let Some((_, skip)) = SKIPPED.iter().find(|(prefix, _)| *prefix == first) else {
        return Err(format!(
            "{first:?} is not alertstream and not in SKIPPED: run it or say in SKIPPED why not"
        ));
    };
    match skip {
        Skip::Reason(why) => Ok(format!("skipped: {why}")),
        Skip::Installs(why) => {
            let named: Vec<&str> = segment
                .text
                .split_whitespace()
                .filter(|w| w.starts_with("completions/"))
                .collect();
            if named.is_empty() {
                return Err(format!(
                    "{first:?} names no file under completions/: not a completion install, \
                     which is all SKIPPED allows {first:?} for"
                ));
            }
            for file in &named {
                if !root().join(file).is_file() {
                    return Err(format!("{file} is not in the repo"));
                }
            }
            Ok(format!("checked {}, not run: {why}", named.join(", ")))
        }
    }
}

#[test]
fn every_readme_example_runs() {
    let started = Instant::now();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = shell_lines(&readme);
    assert!(
        lines.iter().any(|l| l.text.starts_with("alertstream ")),
        "no alertstream example found in README.md's shell blocks"
    );
    let mut run = Run::new();
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for line in &lines {
        for segment in segments(&line.text) {
            let started = Instant::now();
            match handle(&mut run, line, &segment) {
                Ok(what) => outcomes.push(Outcome {
                    line: line.number,
                    what: format!("{}: {what}", segment.text),
                    seconds: started.elapsed().as_secs_f64(),
                }),
                Err(e) => failures.push(format!(
                    "README.md:{}: {}\n  command: {}\n  {e}",
                    line.number, line.text, segment.text
                )),
            }
        }
    }
    for o in &outcomes {
        eprintln!("README.md:{} ({:.1}s) {}", o.line, o.seconds, o.what);
    }
    eprintln!(
        "{} command(s) handled, {} failed, in {:.1}s",
        outcomes.len() + failures.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} README example(s) do not work:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn shell_blocks_are_read_as_a_shell_would() {
    let readme = "text\n```sh\nalertstream send a   # one visit\n\
                  alertstream filter a --where \\\n  'x.y # not a comment' --to b\n\
                  # only a comment\n\nscripts/kafka kill 2; scripts/kafka restart 2\n```\n\
                  ```\nalertstream not a shell block\n```\n\
                  ```console\n$ alertstream print a -e\noutput line\n```\n";
    let lines = shell_lines(readme);
    let texts: Vec<(usize, &str, &str)> = lines
        .iter()
        .map(|l| (l.number, l.text.as_str(), l.comment.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            (3, "alertstream send a", "one visit"),
            (
                4,
                "alertstream filter a --where 'x.y # not a comment' --to b",
                ""
            ),
            (8, "scripts/kafka kill 2; scripts/kafka restart 2", ""),
            (14, "alertstream print a -e", ""),
        ]
    );
    let parts = segments("scripts/kafka kill 2; scripts/kafka restart 2");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].text, "scripts/kafka restart 2");
    let parts = segments("alertstream man | man -l -");
    assert!(parts[0].piped && !parts[1].piped);
    assert_eq!(
        split_words(r#"alertstream print 'a b' "c \"d\"" e\ f --where 'x || y'"#).unwrap(),
        [
            "alertstream",
            "print",
            "a b",
            "c \"d\"",
            "e f",
            "--where",
            "x || y"
        ]
    );
    assert!(split_words("alertstream print $TOPIC").is_err());
    assert!(split_words("alertstream print a > out").is_err());
    assert_eq!(
        expected_code(&Line {
            number: 1,
            text: "alertstream x".into(),
            comment: "refused: exits 2".into(),
        })
        .0,
        2
    );
}

#[test]
fn a_line_of_an_unknown_program_fails() {
    let mut run = Run::new();
    let line = Line {
        number: 1,
        text: "kcat -C -t my-stream".into(),
        comment: String::new(),
    };
    let error = handle(&mut run, &line, &segments(&line.text)[0]).unwrap_err();
    assert!(error.contains("not in SKIPPED"), "{error}");
    let line = Line {
        number: 1,
        text: "cp target/x ~/bin/".into(),
        comment: String::new(),
    };
    assert!(handle(&mut run, &line, &segments(&line.text)[0]).is_err());
}

#[test]
fn rewrites_bound_and_isolate_an_example() {
    let mut run = Run::new();
    let words: Vec<String> = "send my-stream 10000 --repeat --alerts archive/"
        .split(' ')
        .map(String::from)
        .collect();
    let mut cmd = Cmd::parse(&words).unwrap();
    for (_, _, rewrite) in REWRITES {
        rewrite(&mut run, &mut cmd);
    }
    let argv = cmd.argv();
    let topic = run.topics["my-stream"].clone();
    let archive = run.path("archive/");
    assert_eq!(
        argv,
        [
            "send",
            topic.as_str(),
            "200",
            "--repeat",
            "--alerts",
            archive.as_str(),
            "--max-repeats",
            "1",
            "--interval",
            "1"
        ]
    );
    let words: Vec<String> = "print my-stream --from -1h --until -30m"
        .split(' ')
        .map(String::from)
        .collect();
    let mut cmd = Cmd::parse(&words).unwrap();
    for (_, _, rewrite) in REWRITES {
        rewrite(&mut run, &mut cmd);
    }
    assert_eq!(
        cmd.argv(),
        ["print", topic.as_str(), "--from", "-1h", "--until", "-30m"],
        "relative times are kept, and --until bounds the read"
    );
}
