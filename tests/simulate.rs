//! The simulated stream (`send --simulate`, `simulate`), checked by an
//! independent stack: fastavro reads every alert against its schema, astropy
//! opens every cutout, and tests/peer/simulate_check.py checks that the
//! stream behaves like a survey (recurring objects, growing histories, times,
//! positions, class fractions, the cutouts' flux against the alert's).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;

const START: &str = "2026-11-30T05:00:00Z";

fn rubin_schema(version: &str) -> PathBuf {
    let root = PathBuf::from(python_script("registry_peer.py", &["schema-root"]).trim());
    let (major, minor) = version.split_once('.').unwrap();
    root.join(major).join(minor)
}

fn simulate(dir: &Path, args: &[&str]) {
    let mut all = vec!["simulate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", dir.to_str().unwrap(), "--start", START]);
    ok(&all);
}

/// simulate_check.py's findings; it fails the test on any failed check.
fn check(survey: &str, schema: &Path, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--survey",
        survey,
        "--schema",
        schema.to_str().unwrap(),
        "--interval",
        "39",
    ];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    serde_json::from_str(&python_script("simulate_check.py", &args)).unwrap()
}

/// Every diaSourceId of a folder's visits (Rubin), read with apache-avro.
fn ids(dir: &Path) -> Vec<i64> {
    use apache_avro::types::Value;
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        for alert in container_alerts(&entry.unwrap().path()) {
            let Value::Record(fields) = alert else {
                panic!("not a record")
            };
            let Some((_, Value::Record(source))) = fields.iter().find(|(k, _)| k == "diaSource")
            else {
                panic!("no diaSource")
            };
            match source.iter().find(|(k, _)| k == "diaSourceId") {
                Some((_, Value::Long(id))) => ids.push(*id),
                other => panic!("diaSourceId {other:?}"),
            }
        }
    }
    ids
}

#[test]
fn ztf_visits_behave_like_a_survey() {
    let dir = tempfile::tempdir().unwrap();
    let mix = "periodic=0.3,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.2";
    simulate(
        dir.path(),
        &[
            "ztf", "400", "--visits", "12", "--fields", "2", "--seed", "7", "--mix", mix,
        ],
    );
    let found = check(
        "ztf",
        &root().join("schemas"),
        dir.path(),
        &["--count", "400", "--fields", "2", "--mix", mix],
    );
    assert_eq!(found["alerts"], 4800, "{found}");
    assert!(
        found["recurring_objects"].as_u64().unwrap() > 100,
        "{found}"
    );
    assert!(found["history"]["pairs"].as_u64().unwrap() > 100, "{found}");
    assert!(
        found["history"]["upper_limits"].as_u64().unwrap() > 0,
        "{found}"
    );
    assert!(found["flux"]["checked"].as_u64().unwrap() > 1000, "{found}");
}

/// An older ZTF version (3.3, from a real packet's writer schema) is filled by name too.
#[test]
fn ztf_older_schema_versions_work_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("ztf-3.3.avsc");
    let fixture = ztf_fixtures().join("v3.3_472263571115115000.avro");
    python_script(
        "alert_peer.py",
        &[
            "schema",
            fixture.to_str().unwrap(),
            schema.to_str().unwrap(),
        ],
    );
    let out = dir.path().join("visits");
    simulate(
        &out,
        &[
            "ztf",
            "100",
            "--visits",
            "3",
            "--fields",
            "1",
            "--schema",
            schema.to_str().unwrap(),
        ],
    );
    let found = check("ztf", &schema, &out, &["--count", "100"]);
    assert_eq!(found["validated"], 300, "{found}");
}

#[test]
fn rubin_versions_7_to_11_are_filled_by_name() {
    for version in ["7.0", "7.3", "8.0", "9.0", "10.0", "11.1"] {
        let dir = tempfile::tempdir().unwrap();
        let schema = rubin_schema(version);
        // Cutouts for the newest version; the others without, to keep the suite short.
        let mut args = vec![
            "rubin",
            "150",
            "--visits",
            "4",
            "--fields",
            "2",
            "--schema",
            schema.to_str().unwrap(),
        ];
        if version != "11.1" {
            args.push("--no-stamps");
        }
        simulate(dir.path(), &args);
        let found = check("rubin", &schema, dir.path(), &["--count", "150"]);
        assert_eq!(found["validated"], 600, "Rubin {version}: {found}");
        assert!(
            found["recurring_objects"].as_u64().unwrap() > 50,
            "{version}: {found}"
        );
        if version == "11.1" {
            assert!(found["stamps"].as_u64().unwrap() > 0, "{found}");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (dir, seed) in dirs.iter().zip(["5", "5", "6"]) {
        simulate(dir.path(), &["ztf", "50", "--visits", "2", "--seed", seed]);
    }
    let files = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (PathBuf::from(path.file_name().unwrap()), bytes)
            })
            .collect();
        files.sort();
        files
    };
    let (a, b, c) = (
        files(dirs[0].path()),
        files(dirs[1].path()),
        files(dirs[2].path()),
    );
    assert_eq!(a.len(), 2);
    assert!(a == b, "same seed, same bytes");
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        c.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(a[0].1 != c[0].1, "another seed, another sky");
}

#[test]
fn shards_together_give_exactly_the_unsharded_ids() {
    let whole = tempfile::tempdir().unwrap();
    simulate(
        whole.path(),
        &[
            "rubin",
            "300",
            "--visits",
            "2",
            "--no-stamps",
            "--schema",
            rubin_schema("11.1").to_str().unwrap(),
        ],
    );
    let mut union = BTreeSet::new();
    let mut total = 0;
    for shard in ["0/2", "1/2"] {
        let dir = tempfile::tempdir().unwrap();
        simulate(
            dir.path(),
            &[
                "rubin",
                "300",
                "--visits",
                "2",
                "--no-stamps",
                "--shard",
                shard,
                "--schema",
                rubin_schema("11.1").to_str().unwrap(),
            ],
        );
        let part = ids(dir.path());
        assert!(
            !part.is_empty() && part.len() < 600,
            "shard {shard}: {}",
            part.len()
        );
        total += part.len();
        union.extend(part);
    }
    let unsharded: BTreeSet<i64> = ids(whole.path()).into_iter().collect();
    assert_eq!(total, unsharded.len(), "no id in both shards");
    assert_eq!(union, unsharded);
}

/// Through Kafka: every simulated alert prints, with unique ids, and
/// Python's fastavro reads the container-framed stream.
#[test]
fn send_simulate_goes_through_kafka() {
    let topic = topic("simulated");
    ok(&[
        "send",
        &topic,
        "300",
        "--simulate",
        "ztf",
        "--start",
        START,
        "--format",
        "container",
        "--repeat",
        "--interval",
        "0.5",
        "--max-repeats",
        "2",
        "--fields",
        "1",
    ]);
    let lines = json_lines(&ok(&["print", &topic, "-g", &topic, "-e"]));
    assert_eq!(lines.len(), 600);
    let ids: BTreeSet<i64> = lines
        .iter()
        .map(|l| l["candid"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 600, "candids unique");
    let read = json_lines(&python_script(
        "alert_peer.py",
        &[
            "consume",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--format",
            "container",
            "--count",
            "600",
        ],
    ));
    assert_eq!(read.len(), 600);
    let objects: BTreeSet<&str> = read
        .iter()
        .map(|a| a["objectId"].as_str().unwrap())
        .collect();
    assert!(objects.len() < 600, "objects recur between the two visits");
}

/// --bursts sends a visit detector range by detector range, spread over --spread seconds.
#[test]
fn bursts_go_out_detector_by_detector() {
    let topic = topic("bursts");
    ok(&[
        "send",
        &topic,
        "400",
        "--simulate",
        "rubin",
        "--schema",
        rubin_schema("11.1").to_str().unwrap(),
        "--no-stamps",
        "--bursts",
        "4",
        "--spread",
        "4",
    ]);
    let lines = json_lines(&ok(&[
        "print",
        &topic,
        "-g",
        &topic,
        "-e",
        "--meta",
        "--schema",
        rubin_schema("11.1").to_str().unwrap(),
    ]));
    assert_eq!(lines.len(), 400);
    let detectors: Vec<i64> = lines
        .iter()
        .map(|l| l["diaSource"]["detector"].as_i64().unwrap())
        .collect();
    assert!(
        detectors.windows(2).all(|w| w[0] <= w[1]),
        "detector by detector"
    );
    let sent_at = |l: &serde_json::Value| l["_kafka"]["timestamp"].as_i64().unwrap();
    let first_sent = lines.iter().map(sent_at).min().unwrap();
    let last_burst = lines
        .iter()
        .filter(|l| l["diaSource"]["detector"].as_i64().unwrap() >= 141)
        .map(sent_at)
        .min()
        .unwrap();
    // The last burst (detectors 141..188) starts 3 s after the visit; the
    // first alert goes out as soon as it is made.
    assert!(
        last_burst - first_sent >= 2500,
        "bursts spread: {}",
        last_burst - first_sent
    );
}

#[test]
fn bad_simulation_options_exit_2_with_one_line() {
    let schema_dir = tempfile::tempdir().unwrap();
    let bare = schema_dir.path().join("bare.avsc");
    std::fs::write(
        &bare,
        r#"{"type":"record","name":"alert","fields":[{"name":"candid","type":"long"}]}"#,
    )
    .unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["simulate", "hubble", "10", "--out", "x"], "hubble"),
        (
            &["simulate", "ztf", "10", "--out", "x", "--shard", "2/2"],
            "--shard 2/2",
        ),
        (&["simulate", "ztf", "0", "--out", "x"], "COUNT 0"),
        (
            &[
                "simulate",
                "ztf",
                "10",
                "--out",
                "x",
                "--schema",
                bare.to_str().unwrap(),
            ],
            "candidate.ra, candidate.dec, candidate.jd",
        ),
        (&["send", "t", "--seed", "3"], "--seed goes with --simulate"),
        (
            &["simulate", "ztf", "10", "--out", "x", "--bursts", "2"],
            "go with send --simulate",
        ),
        (
            &["send", "t", "--simulate", "ztf", "--spread", "3"],
            "--spread goes with --bursts",
        ),
    ];
    for (args, says) in cases {
        let output = run(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    assert!(!Path::new("x").exists(), "nothing written on refusal");
}

/// simulate writes files: its help leaves the Kafka options out, and it
/// still accepts them (-b, or ALERTSTREAM_BROKERS set in a shell).
#[test]
fn simulate_help_leaves_out_the_kafka_options_it_accepts() {
    let help = ok(&["simulate", "--help"]);
    for not_here in ["--brokers", "--kafka", "--metrics", "--bursts", "--spread"] {
        assert!(!help.contains(not_here), "{not_here} in:\n{help}");
    }
    assert!(ok(&["send", "--help"]).contains("--brokers"));
    assert!(!ok(&["man", "simulate"]).contains("brokers"));
    let bash = ok(&["completions", "bash"]);
    let offered = |sub: &str| {
        let case = format!("alertstream__subcmd__{sub})");
        let mut lines = bash.lines().skip_while(|l| l.trim() != case);
        lines.nth(1).expect("a case per subcommand").to_string()
    };
    assert!(offered("simulate").contains("--seed"));
    assert!(offered("send").contains("--bursts"));
    for kafka in ["--brokers", "--metrics", "--bursts", "--spread"] {
        assert!(
            !offered("simulate").contains(kafka),
            "{kafka} offered to simulate"
        );
        assert!(
            offered("send").contains(kafka),
            "{kafka} not offered to send"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    simulate(
        dir.path(),
        &["ztf", "2", "--no-stamps", "-b", "elsewhere:1", "-X", "a=b"],
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Without --repeat, --interval is --simulate's grid: the one visit's
/// number is its start divided by the interval.
#[test]
fn a_single_simulated_visit_is_numbered_on_the_interval_grid() {
    let topic = topic("simulated-grid");
    ok(&[
        "send",
        &topic,
        "2",
        "--simulate",
        "ztf",
        "--no-stamps",
        "--start",
        START,
        "--interval",
        "5",
    ]);
    let start_ms = alertstream::time::parse("--start", START).unwrap();
    let lines = json_lines(&ok(&["print", &topic, "--meta", "-g", &topic, "-e"]));
    assert_eq!(lines.len(), 2);
    for line in lines {
        assert_eq!(line["_kafka"]["visit"], start_ms / 5000, "{line}");
    }
}

/// A simulated Rubin stream through a schema registry, as Rubin sends it:
/// the schema registered once, every message framed with its id, and read
/// back through the registry.
#[test]
fn simulated_rubin_goes_through_a_schema_registry() {
    let registry = std::env::var("ALERTSTREAM_REGISTRY")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_string());
    let topic = topic("simulated-registry");
    let schema = rubin_schema("11.1");
    ok(&[
        "send",
        &topic,
        "50",
        "--simulate",
        "rubin",
        "--schema",
        schema.to_str().unwrap(),
        "--no-stamps",
        "--format",
        "confluent",
        "--schema-registry",
        &registry,
    ]);
    let lines = json_lines(&ok(&[
        "print",
        &topic,
        "-g",
        &topic,
        "-e",
        "--schema-registry",
        &registry,
        "--meta",
    ]));
    assert_eq!(lines.len(), 50);
    let id = &lines[0]["_kafka"]["schema_id"];
    assert!(id.as_u64().is_some(), "{}", lines[0]["_kafka"]);
    assert!(lines.iter().all(|l| l["_kafka"]["schema_id"] == *id));
    assert!(lines.iter().all(|l| l["diaSource"]["ra"].is_f64()));
}

/// A single visit without --start is one already taken: its alerts' times
/// are never after the broker's timestamps (brokers measure latency so).
#[test]
fn a_single_visit_is_never_in_the_future() {
    let topic = topic("simulated-now");
    ok(&["send", &topic, "20", "--simulate", "ztf", "--no-stamps"]);
    let lines = json_lines(&ok(&["print", &topic, "-g", &topic, "-e", "--meta"]));
    assert_eq!(lines.len(), 20);
    for line in lines {
        let jd = line["candidate"]["jd"].as_f64().unwrap();
        let taken_ms = (jd - 2_440_587.5) * 86_400_000.0;
        let sent_ms = line["_kafka"]["timestamp"].as_f64().unwrap();
        assert!(taken_ms <= sent_ms, "taken {taken_ms}, sent {sent_ms}");
        assert!(
            sent_ms - taken_ms < 39_000.0 + 60_000.0,
            "within an interval and a minute"
        );
    }
}

/// The sample alerts built into the binary are the simulator's output for
/// scripts/sample-alerts' seed and start, byte for byte, and they, a larger
/// simulated night with every class and the real ZTF packets all lie within
/// ZTF's own ranges (tests/peer/ztf_ranges.py, read with fastavro): no
/// negative fwhm, no magdiff of 15 as the hand-made samples had.
#[test]
fn sample_alerts_are_simulated_and_within_ztfs_ranges() {
    let script = std::fs::read_to_string(root().join("scripts/sample-alerts")).unwrap();
    let args: Vec<&str> = script
        .lines()
        .skip_while(|l| !l.contains(" simulate "))
        .take(2)
        .flat_map(|l| l.split_whitespace())
        .skip_while(|w| *w != "simulate")
        .skip(1)
        .take_while(|w| *w != "--out")
        .filter(|w| *w != "\\")
        .collect();
    assert!(
        args.contains(&"--seed") && args.contains(&"--start"),
        "{args:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["simulate"];
    all.extend_from_slice(&args);
    all.extend_from_slice(&["--out", dir.path().to_str().unwrap()]);
    ok(&all);
    let mut made: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    made.sort();
    assert_eq!(made.len(), 3);
    for (n, path) in made.iter().enumerate() {
        let sample = root().join(format!("sample-alerts/visit-{}.avro", n + 1));
        assert!(
            std::fs::read(path).unwrap() == std::fs::read(&sample).unwrap(),
            "{} differs from the simulator's {}: run scripts/sample-alerts",
            sample.display(),
            path.display()
        );
    }

    let night = tempfile::tempdir().unwrap();
    let mix = "periodic=0.3,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.2";
    simulate(night.path(), &["ztf", "300", "--visits", "4", "--mix", mix]);
    for folder in [
        root().join("sample-alerts"),
        night.path().to_path_buf(),
        ztf_fixtures(),
    ] {
        let found: serde_json::Value =
            serde_json::from_str(&python_script("ztf_ranges.py", &[folder.to_str().unwrap()]))
                .unwrap();
        assert!(found["values"].as_u64().unwrap() > 1000, "{found}");
    }
}
