//! README promises no other test held: filter forwards a container message
//! of several alerts once and never an undecodable one; a replay's loop and
//! offset headers, loop by loop, and `--pace candidate.jd` on real ZTF
//! packets; record's `--where`, `--roll-bytes` and `--roll-seconds`, and the
//! Avro types Parquet cannot hold; monitor giving up on an unreachable
//! broker.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use common::*;

/// The value of a header, as text (None when the message lacks it).
fn header(message: &RawMessage, key: &str) -> Option<String> {
    message
        .headers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| String::from_utf8(v.clone().unwrap_or_default()).unwrap())
}

/// Every alert of a payload (any framing), as `print` shows it.
fn decoded(payload: &[u8]) -> Vec<serde_json::Value> {
    let decoder =
        alertstream::avro::codec::Decoder::new(alertstream::avro::schema::built_in(), false);
    let (_, alerts) = decoder.decode(payload).unwrap();
    alerts.iter().map(expected_json).collect()
}

fn candid_of(alert: &serde_json::Value) -> i64 {
    alert["candid"].as_i64().expect("a candid")
}

/// The `.avro` files of a folder, by name (stream order).
fn avro_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    files.sort();
    files
}

/// The candids of an Avro archive, in file order.
fn archived_candids(dir: &Path) -> Vec<i64> {
    alertstream::alerts::source::load(&[dir.to_path_buf()])
        .unwrap()
        .iter()
        .map(|a| candid_of(&expected_json(&a.value)))
        .collect()
}

/// "A message that cannot be decoded is reported and skipped, never
/// forwarded. A container message holding several alerts goes to a route
/// once if any of them is selected": visit-1.avro (four alerts) produced as
/// one message among undecodable ones goes whole, byte for byte, to the
/// route that selects one of its alerts and to the one that selects all;
/// the garbage goes nowhere.
#[test]
fn filter_routes_a_container_once_and_never_forwards_garbage() {
    let input = topic("promise-filter");
    create_topic(&input, 1);
    let container = std::fs::read(root().join("sample-alerts/visit-1.avro")).unwrap();
    let alerts = decoded(&container);
    assert_eq!(alerts.len(), 4, "visit-1.avro holds four alerts");
    let truncated = &container[..3000];
    let garbage: [&[u8]; 3] = [b"garbage, not an alert at all", truncated, b"Obj\x01junk"];
    produce_raw(&input, &[garbage[0], &container, garbage[1], garbage[2]]);
    // And one decodable schemaless alert (the first sample) after them.
    ok(&["send", &input, "1", "--no-stamps"]);
    let sent = read_committed(&input);
    assert_eq!(sent.len(), 5);

    let third = candid_of(&alerts[2]);
    let (one, all, none) = (
        format!("{input}-one"),
        format!("{input}-all"),
        format!("{input}-none"),
    );
    let output = run(&[
        "filter",
        &input,
        "-g",
        &input,
        "-e",
        "--where",
        &format!("candid == {third}"),
        "--to",
        &one,
        "--where",
        "true",
        "--to",
        &all,
        "--where",
        "candid == 0",
        "--to",
        &none,
    ]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("3 skipped"), "the three undecodable: {log}");

    let routed = read_committed(&one);
    assert_eq!(
        routed.len(),
        1,
        "one message for one selected alert of four"
    );
    assert_eq!(
        routed[0].payload, container,
        "the container's bytes unchanged"
    );
    assert_eq!(routed[0].timestamp, sent[1].timestamp);

    let routed = read_committed(&all);
    assert_eq!(
        routed.len(),
        2,
        "the container once (not once per alert) and the schemaless alert; no garbage"
    );
    assert_eq!(routed[0].payload, container);
    assert_eq!(routed[1].payload, sent[4].payload);
    assert_eq!(routed[1].headers, sent[4].headers, "headers unchanged");
    for message in &routed {
        assert!(
            !garbage.contains(&message.payload.as_slice()),
            "an undecodable message was forwarded"
        );
    }
    assert!(
        read_committed(&none).is_empty(),
        "nothing selected, nothing routed"
    );
}

/// "The recorded key and headers go with each alert, plus `alertstream-loop`
/// (1, 2, ...) and `alertstream-replay-offset-ms` (its planned time since the
/// loop started)"; "`--repeat` loops the archive `--max-repeats` times: each
/// loop starts right after the previous one's last alert; ... the alerts
/// themselves are the same bytes".
#[test]
fn a_recorded_replay_carries_loop_and_offset_headers_every_loop() {
    let source = topic("promise-replay-src");
    ok(&[
        "send",
        &source,
        "4",
        "--no-stamps",
        "--key",
        "objectId",
        "--repeat",
        "--interval",
        "0.5",
        "--max-repeats",
        "2",
    ]);
    let recorded = read_committed(&source);
    assert_eq!(recorded.len(), 8);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    ok(&["record", &source, "--out", dir, "-e", "-g", &source]);

    let replayed_topic = format!("{source}-replayed");
    let speed = 2.0;
    ok(&[
        "send",
        &replayed_topic,
        "--alerts",
        dir,
        "--pace",
        "recorded",
        "--speed",
        "2",
        "--repeat",
        "--max-repeats",
        "2",
    ]);
    let replayed = read_committed(&replayed_topic);
    assert_eq!(
        replayed.len(),
        2 * recorded.len(),
        "every alert in each loop"
    );

    let id = |m: &RawMessage| {
        (
            header(m, "alertstream-visit").expect("the recorded visit header"),
            header(m, "alertstream-index").expect("the recorded index header"),
        )
    };
    let by_id: HashMap<_, &RawMessage> = recorded.iter().map(|m| (id(m), m)).collect();
    assert_eq!(
        by_id.len(),
        recorded.len(),
        "(visit, index) names a source alert"
    );
    let first_time = recorded.iter().filter_map(|m| m.timestamp).min().unwrap();

    // Sent in order on one partition: the first loop, then the second.
    for (number, messages) in replayed.chunks(recorded.len()).enumerate() {
        let loop_number = (number + 1).to_string();
        let mut seen = BTreeMap::new();
        let mut previous_offset = 0;
        let loop_start = messages[0].timestamp.unwrap();
        for message in messages {
            assert_eq!(
                header(message, "alertstream-loop").as_deref(),
                Some(loop_number.as_str()),
                "{:?}",
                message.headers
            );
            let offset: i64 = header(message, "alertstream-replay-offset-ms")
                .expect("a replay offset on every message")
                .parse()
                .expect("milliseconds");
            let original = by_id[&id(message)];
            *seen.entry(id(message)).or_insert(0) += 1;
            // Its recorded time since the first, divided by --speed.
            let planned = (original.timestamp.unwrap() - first_time) as f64 / speed;
            assert!(
                (offset as f64 - planned).abs() <= 1.0,
                "offset {offset} ms, planned {planned} ms"
            );
            assert!(offset >= previous_offset, "offsets in send order");
            previous_offset = offset;
            assert!(
                message.timestamp.unwrap() - loop_start >= offset - 5,
                "never early"
            );
            assert_eq!(message.payload, original.payload, "the same bytes");
            assert_eq!(message.key, original.key, "the recorded key goes along");
            for recorded_header in &original.headers {
                assert!(
                    message.headers.contains(recorded_header),
                    "recorded header {:?} missing: {:?}",
                    recorded_header.0,
                    message.headers
                );
            }
            assert_eq!(message.headers.len(), original.headers.len() + 2);
        }
        assert_eq!(seen.len(), recorded.len(), "loop {loop_number}: {seen:?}");
        assert!(seen.values().all(|n| *n == 1), "each alert once: {seen:?}");
    }
    // The second loop starts after the first one's last alert.
    let half = recorded.len();
    assert!(replayed[half].timestamp >= replayed[half - 1].timestamp);
    // print --meta shows the two headers as "replay".
    let lines = json_lines(&ok(&[
        "print",
        &replayed_topic,
        "--meta",
        "-e",
        "-g",
        &replayed_topic,
    ]));
    assert_eq!(lines.len(), replayed.len());
    for (line, message) in lines.iter().zip(&replayed) {
        let replay = &line["_kafka"]["replay"];
        assert_eq!(
            replay["loop"].to_string(),
            header(message, "alertstream-loop").unwrap()
        );
        assert_eq!(
            replay["offset_ms"].to_string(),
            header(message, "alertstream-replay-offset-ms").unwrap()
        );
    }
    let printer = format!("{source}-print");
    let first = json_lines(&ok(&["print", &source, "--meta", "-e", "-g", &printer]));
    assert!(first[0]["_kafka"].get("replay").is_none(), "not a replay");
}

/// "`--pace FIELD` paces by an alert field ... `candidate.jd` (ZTF) ...
/// fields whose name contains `jd` or `mjd` are in days": all 20 real ZTF
/// packets (three nights, a year apart at most) go out once, each with an
/// offset of (jd - first jd) days divided by --speed, non-decreasing in
/// send order, and none early. --speed 1e7 plays the 343 days in 3 s.
#[test]
fn pace_by_candidate_jd_sends_every_alert_at_its_time() {
    let topic = topic("promise-pace-jd");
    let speed = 1e7;
    let fixtures = ztf_fixtures();
    ok(&[
        "send",
        &topic,
        "--alerts",
        fixtures.to_str().unwrap(),
        "--pace",
        "candidate.jd",
        "--speed",
        "1e7",
        "--format",
        "container",
    ]);
    let messages = read_committed(&topic);
    let expected: usize = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .map(|p| container_alerts(&p).len())
        .sum();
    assert_eq!(expected, 20);
    assert_eq!(messages.len(), expected, "every alert sent");
    let alerts: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| decoded(&m.payload).remove(0))
        .collect();
    let mut ids: Vec<(i64, String)> = alerts
        .iter()
        .map(|a| {
            let version = a["schemavsn"].as_str().unwrap_or("").to_string();
            (candid_of(a), version)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected, "each alert once");

    let jd = |a: &serde_json::Value| a["candidate"]["jd"].as_f64().expect("candidate.jd");
    let first_jd = alerts.iter().map(jd).fold(f64::INFINITY, f64::min);
    let start = messages[0].timestamp.unwrap();
    let mut previous = 0;
    for (message, alert) in messages.iter().zip(&alerts) {
        let offset: i64 = header(message, "alertstream-replay-offset-ms")
            .expect("a replay offset on every message")
            .parse()
            .unwrap();
        assert_eq!(header(message, "alertstream-loop").as_deref(), Some("1"));
        let planned = (jd(alert) - first_jd) * 86_400_000.0 / speed;
        assert!(
            (offset as f64 - planned).abs() <= 2.0,
            "candid {}: offset {offset} ms, planned {planned:.1} ms",
            candid_of(alert)
        );
        assert!(offset >= previous, "offsets non-decreasing in send order");
        previous = offset;
        assert!(
            message.timestamp.unwrap() - start >= offset - 5,
            "never early"
        );
    }
    assert!(previous > 2_000, "the span is kept: {previous} ms");
}

/// "`--where EXPR` archives only the alerts an expression selects ... in
/// both formats": of the 12 samples (schemaless) and visit-1.avro as one
/// container message, only the alerts under a magnitude cut are archived,
/// alert by alert (a container's other alerts left out).
#[test]
fn record_where_archives_only_the_selected_alerts() {
    let topic = topic("promise-record-where");
    ok(&["send", &topic, "--no-stamps"]);
    let container = std::fs::read(root().join("sample-alerts/visit-1.avro")).unwrap();
    produce_raw(&topic, &[&container]);

    let samples: Vec<serde_json::Value> = sample_alerts().iter().map(expected_json).collect();
    let magnitude = |a: &serde_json::Value| a["candidate"]["magpsf"].as_f64().unwrap();
    let mut magnitudes: Vec<f64> = samples.iter().map(magnitude).collect();
    magnitudes.sort_by(f64::total_cmp);
    // Halfway between the 6th and 7th brightest, away from any value.
    let cut = (magnitudes[5] + magnitudes[6]) / 2.0;
    let expression = format!("candidate.magpsf < {cut}");
    let mut expected: Vec<i64> = samples
        .iter()
        .chain(&decoded(&container))
        .filter(|a| magnitude(a) < cut)
        .map(candid_of)
        .collect();
    expected.sort();
    assert!(
        !expected.is_empty() && expected.len() < 16,
        "the cut selects some, not all: {expected:?}"
    );

    let out = tempfile::tempdir().unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        out.path().to_str().unwrap(),
        "-e",
        "-g",
        &format!("{topic}-avro"),
        "--where",
        &expression,
    ]);
    let mut archived = archived_candids(out.path());
    archived.sort();
    assert_eq!(archived, expected, "Avro: only what {expression} selects");

    let parquet = tempfile::tempdir().unwrap();
    let dir = parquet.path().to_str().unwrap();
    ok(&[
        "record",
        &topic,
        "--out",
        dir,
        "-e",
        "-g",
        &format!("{topic}-parquet"),
        "--format",
        "parquet",
        "--where",
        &expression,
    ]);
    let mut archived: Vec<i64> = python_script("archive_check.py", &["parquet", dir])
        .lines()
        .flat_map(|l| {
            let file: serde_json::Value = serde_json::from_str(l).unwrap();
            file["candids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    archived.sort();
    assert_eq!(
        archived, expected,
        "Parquet: only what {expression} selects"
    );
}

/// "rolled after ... `--roll-bytes`": a file is closed once it is past the
/// limit, counting what is still buffered (an Avro block being filled, a
/// Parquet row group not yet written), so every file but the last holds at
/// least the limit and none runs past it by more than an alert and the
/// file's own overhead, in both formats, even with a limit far below a
/// block or a row group; no alert is lost or doubled between files.
#[test]
fn roll_bytes_makes_files_near_the_limit() {
    let topic = topic("promise-roll-bytes");
    ok(&["send", &topic, "60"]);
    let limit: u64 = 300 << 10;
    for format in ["avro", "parquet"] {
        let out = tempfile::tempdir().unwrap();
        ok(&[
            "record",
            &topic,
            "--out",
            out.path().to_str().unwrap(),
            "-e",
            "-g",
            &format!("{topic}-{format}"),
            "--roll-bytes",
            "300K",
            "--format",
            format,
        ]);
        let mut files: Vec<PathBuf> = walk(out.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == format))
            .collect();
        files.sort();
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .collect();
        assert!(
            sizes.len() >= 8,
            "{format}: 60 alerts of ~68 KB in 300 KiB files: {sizes:?}"
        );
        for (i, size) in sizes.iter().enumerate() {
            if i + 1 < sizes.len() {
                assert!(*size >= limit * 9 / 10, "{format}: rolled early: {sizes:?}");
            }
            assert!(
                *size < limit + (160 << 10),
                "{format}: far past the limit: {sizes:?}"
            );
        }
        let archived = match format {
            "avro" => archived_candids(out.path()).len(),
            _ => python_script(
                "archive_check.py",
                &["parquet", out.path().to_str().unwrap()],
            )
            .lines()
            .map(|l| {
                let file: serde_json::Value = serde_json::from_str(l).unwrap();
                file["candids"].as_array().unwrap().len()
            })
            .sum(),
        };
        assert_eq!(archived, 60, "{format}: every alert, once");
    }
}

/// "rolled after ... `--roll-seconds`": three visits a second apart,
/// recorded live with `--roll-seconds 1`, go into several files, none
/// holding more than about a second of the stream; the last file is closed
/// by its age alone (its offsets committed while record still runs, with
/// nothing more arriving), and every alert is archived once.
#[test]
fn roll_seconds_closes_files_by_age() {
    let topic = topic("promise-roll-seconds");
    let group = format!("{topic}-group");
    create_topic(&topic, 1);
    let out = tempfile::tempdir().unwrap();
    let recorder = spawn(&[
        "record",
        &topic,
        "--out",
        out.path().to_str().unwrap(),
        "-g",
        &group,
        "--roll-seconds",
        "1",
    ]);
    let mut log = Vec::new();
    recorder.wait_stderr(
        "the assignment",
        |l| l.contains("partitions assigned"),
        &mut log,
    );
    ok(&[
        "send",
        &topic,
        "4",
        "--no-stamps",
        "--repeat",
        "--interval",
        "1",
        "--max-repeats",
        "3",
    ]);
    // Offsets are committed only for files renamed into place: all 12 once
    // the last file has aged out. The broker only says so when asked.
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed_offset(&group, &topic) < 12 {
        assert!(
            Instant::now() < deadline,
            "the last file was never closed by age"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _, rest) = recorder.terminate();
    log.extend(rest);
    assert!(status.success(), "{}", log.join("\n"));

    let files = avro_files(out.path());
    assert!(files.len() > 1, "three seconds in 1 s files: {files:?}");
    let mut total = 0;
    for file in &files {
        let alerts = alertstream::alerts::source::load(std::slice::from_ref(file)).unwrap();
        let times: Vec<i64> = alerts
            .iter()
            .map(|a| a.meta.as_ref().unwrap().timestamp.unwrap())
            .collect();
        let span = times.iter().max().unwrap() - times.iter().min().unwrap();
        assert!(span < 2000, "{}: {span} ms of stream", file.display());
        total += alerts.len();
    }
    assert_eq!(total, 12, "every alert, once");
}

/// A one-alert container file of `schema`.
fn container_of(schema: &str, alert: Value) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).unwrap();
    let mut writer = apache_avro::Writer::new(&schema, Vec::new());
    writer.append(alert).unwrap();
    writer.into_inner().unwrap()
}

/// "Types with no column here (maps, unions of several non-null types,
/// decimals) stop `record` with exit 2 naming the field: use `--format
/// avro` for them": each stops a Parquet recorder with exit 2 naming its
/// field, no Parquet file left behind, and the same topic records as Avro.
#[test]
fn parquet_refuses_types_it_cannot_hold_with_exit_2() {
    let schema = |field: &str| {
        format!(
            r#"{{"type": "record", "name": "alert", "namespace": "test", "fields": [
                {{"name": "candid", "type": "long"}}, {field}]}}"#
        )
    };
    let cases = [
        (
            "tags",
            schema(r#"{"name": "tags", "type": {"type": "map", "values": "string"}}"#),
            Value::Map(HashMap::from([(
                "filter".to_string(),
                Value::String("g".to_string()),
            )])),
        ),
        (
            "flux",
            schema(r#"{"name": "flux", "type": ["null", "double", "string"]}"#),
            Value::Union(1, Box::new(Value::Double(1.5))),
        ),
        (
            "price",
            schema(
                r#"{"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                    "precision": 10, "scale": 2}}"#,
            ),
            Value::Decimal(apache_avro::Decimal::from(vec![1u8, 44])),
        ),
    ];
    for (field, schema, value) in cases {
        let topic = topic(&format!("promise-parquet-{field}"));
        let alert = Value::Record(vec![
            ("candid".to_string(), Value::Long(7)),
            (field.to_string(), value),
        ]);
        produce_raw(&topic, &[&container_of(&schema, alert)]);
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().to_str().unwrap();
        let output = run(&[
            "record", &topic, "--out", dir, "-e", "-g", &topic, "--format", "parquet",
        ]);
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{field}: {log}");
        assert!(log.contains(field), "{field} named: {log}");
        assert!(log.contains("--format avro"), "{log}");
        let parquet_files = walk(out.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count();
        assert_eq!(parquet_files, 0, "{field}: nothing written");
        // As the message says: Avro archives hold it.
        let avro = tempfile::tempdir().unwrap();
        ok(&[
            "record",
            &topic,
            "--out",
            avro.path().to_str().unwrap(),
            "-e",
            "-g",
            &format!("{topic}-avro"),
        ]);
        assert_eq!(archived_candids(avro.path()), vec![7], "{field}");
    }
}

/// Every file under `dir`, at any depth.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// "With every broker gone, `print` and `monitor` give up after
/// `--broker-timeout`, naming the brokers" with exit 1 ("Kafka or I/O
/// failure, e.g. brokers unreachable (named in the message)"): a monitor
/// that never reaches its broker (no -e) waits the timeout, not forever.
#[test]
fn monitor_gives_up_on_an_unreachable_broker() {
    let started = Instant::now();
    let output = run(&[
        "-b",
        "127.0.0.1:1",
        "monitor",
        "unreachable",
        "--broker-timeout",
        "2",
    ]);
    let elapsed = started.elapsed();
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("127.0.0.1:1"), "the broker named: {log}");
    assert!(
        elapsed >= Duration::from_millis(1500),
        "gave up before --broker-timeout: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert!(output.stdout.is_empty(), "no status lines without a broker");
}
