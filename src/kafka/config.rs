//! The one place Kafka client configuration is built: command defaults, then
//! bootstrap brokers, then `--kafka-config FILE`, then `-X key=value`, so an
//! operator can override anything the program chose.

use std::path::Path;

use anyhow::Result;
use rdkafka::config::ClientConfig;

use crate::exit::bad_input;

/// Kafka connection settings shared by every command.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    brokers: String,
    /// Properties from the file, then from `-X`, in the order they were given.
    overrides: Vec<(String, String)>,
}

impl KafkaSettings {
    /// Validates `-b`, `--kafka-config` and `-X`.
    pub fn new(brokers: &str, config_file: Option<&Path>, properties: &[String]) -> Result<Self> {
        let brokers = brokers.trim();
        if brokers.is_empty() {
            return Err(bad_input(
                "--brokers is empty: give host:port[,host:port...]",
            ));
        }
        let mut overrides = Vec::new();
        if let Some(path) = config_file {
            overrides.extend(read_properties_file(path)?);
        }
        for property in properties {
            let (key, value) = split_property(property).ok_or_else(|| {
                bad_input(format!(
                    "-X {}: expected KEY=VALUE, e.g. -X linger.ms=10",
                    redact_line(property)
                ))
            })?;
            overrides.push((key.to_string(), value.to_string()));
        }
        // Only the value that counts: -X overrides a file's.
        let last: std::collections::HashMap<&str, &str> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (key, value) in last {
            check_file_property(key, value)?;
        }
        Ok(Self {
            brokers: brokers.to_string(),
            overrides,
        })
    }

    /// The bootstrap brokers, as given (or as overridden by `bootstrap.servers`).
    pub fn brokers(&self) -> &str {
        self.overrides
            .iter()
            .rev()
            .find(|(k, _)| k == "bootstrap.servers" || k == "metadata.broker.list")
            .map_or(&self.brokers, |(_, v)| v)
    }

    /// A client configuration: `defaults` first, then the user's settings on top.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.overrides {
            config.set(key, value);
        }
        tracing::debug!("kafka configuration: {}", describe(&config));
        config
    }
}

/// Parses `key=value` lines; blank lines and lines starting with `#` or `!` are skipped.
fn read_properties_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad_input(format!(
            "cannot read --kafka-config {}: {e}",
            path.display()
        ))
    })?;
    let mut properties = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = split_property(line).ok_or_else(|| {
            bad_input(format!(
                "{}:{}: expected key=value, found '{}'",
                path.display(),
                number + 1,
                redact_line(line)
            ))
        })?;
        properties.push((key.to_string(), value.to_string()));
    }
    Ok(properties)
}

/// A property naming a file (`ssl.ca.location`, `ssl.key.location`, a
/// keytab) must name one that exists: librdkafka's own error names neither
/// the property's file nor that it is missing.
fn check_file_property(key: &str, value: &str) -> Result<()> {
    // ssl.engine.location may be a bare library name, found on the search path.
    let names_a_file = (key.ends_with(".location") && key != "ssl.engine.location")
        || key == "sasl.kerberos.keytab";
    // "probe" asks librdkafka to look for the system's CA certificates.
    let probe = value == "probe" && key.ends_with(".ca.location");
    if !names_a_file || value.is_empty() || probe {
        return Ok(());
    }
    match std::fs::metadata(value) {
        Ok(_) => Ok(()),
        Err(e) => Err(bad_input(format!(
            "{key}={value}: cannot read it ({e}); paths are relative to the folder alertstream runs in"
        ))),
    }
}

fn split_property(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then_some((key, value.trim()))
}

/// Words in a property's name that mark its value as a secret.
const SECRET_WORDS: [&str; 5] = ["password", "secret", "ssl.key.pem", "token", "sasl.jaas"];

/// Whether a property holds a secret that must never be printed.
pub fn is_secret(key: &str) -> bool {
    secret_word_end(key).is_some()
}

/// Where the first secret word of `text` ends (ASCII case ignored).
fn secret_word_end(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    SECRET_WORDS
        .iter()
        .filter_map(|word| lower.find(word).map(|at| at + word.len()))
        .min()
}

/// A malformed property line as an error may show it: a secret's value
/// never, even with its separator mistyped or missing.
fn redact_line(line: &str) -> String {
    match line.find(['=', ':', ' ']) {
        // The separator as typed: "key value" must not read as a valid "key=value".
        Some(at) if is_secret(&line[..at]) => format!("{}[redacted]", &line[..=at]),
        _ => match secret_word_end(line) {
            // The name runs into its value: keep the name up to the word.
            Some(end) if line.is_char_boundary(end) => format!("{}[redacted]", &line[..end]),
            Some(_) => "[redacted]".to_string(),
            None if line.len() > 40 => "[line not shown]".to_string(),
            None => line.to_string(),
        },
    }
}

/// The configuration as `key=value` pairs with secrets redacted, for logs.
pub fn describe(config: &ClientConfig) -> String {
    // A BTreeMap: already sorted by key.
    config
        .config_map()
        .into_iter()
        .map(|(k, v)| {
            if is_secret(k) || !is_known_property(k) {
                format!("{k}=[redacted]")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether librdkafka knows the property: a misspelt secret
/// (`sasl.passwrd`) is no secret by name, so an unknown name's value is
/// never shown either.
fn is_known_property(key: &str) -> bool {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaConfRes;
    !matches!(
        ClientConfig::new().set(key, "").create_native_config(),
        Err(KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            ..
        ))
    )
}

/// Turns a client-creation failure (an unknown or invalid property) into an
/// input error that names the property and where to fix it.
pub fn creation_error(error: rdkafka::error::KafkaError) -> anyhow::Error {
    if let rdkafka::error::KafkaError::ClientConfig(result, why, key, value) = &error {
        let unknown = *result == rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN;
        // A misspelt secret's name is unknown: its value is never shown.
        let value = if is_secret(key) || unknown {
            "[redacted]"
        } else {
            value
        };
        return bad_input(format!(
            "invalid Kafka property {key}={value}: {} (check -X options and --kafka-config; \
             properties: https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)",
            why.trim_end().trim_end_matches('.')
        ));
    }
    bad_input(format!(
        "invalid Kafka configuration: {error} (check -X options and --kafka-config; \
         properties: https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_x_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(
            &file,
            "# comment\n\nlinger.ms = 50\nsasl.password=hunter2\n",
        )
        .unwrap();
        let settings = KafkaSettings::new(
            "a:1",
            Some(&file),
            &["linger.ms=7".to_string(), "client.id=x".to_string()],
        )
        .unwrap();
        let config = settings.client_config(&[("linger.ms", "5"), ("acks", "all")]);
        assert_eq!(config.get("linger.ms"), Some("7"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("a:1"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        let shown = describe(&config);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password=[redacted]"));
    }

    #[test]
    fn malformed_property_is_an_input_error() {
        let error = KafkaSettings::new("a:1", None, &["linger.ms".to_string()]).unwrap_err();
        assert_eq!(crate::exit::code_of(&error), crate::exit::BAD_INPUT);
        assert!(error.to_string().contains("-X linger.ms"));
    }

    /// Issue 24: a property librdkafka refuses is named once, its value
    /// shown unless it is a secret or its name unknown (a misspelt secret).
    #[test]
    fn refused_property_reads_as_one_sentence() {
        let error = rdkafka::error::KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "No such configuration property: \"foo.bar\"".into(),
            "foo.bar".into(),
            "1".into(),
        );
        let text = creation_error(error).to_string();
        assert!(
            text.starts_with("invalid Kafka property foo.bar=[redacted]: No such"),
            "{text}"
        );
        let secret = rdkafka::error::KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        assert!(!creation_error(secret).to_string().contains("hunter2"));
        let invalid = rdkafka::error::KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value".into(),
            "linger.ms".into(),
            "soon".into(),
        );
        assert!(creation_error(invalid)
            .to_string()
            .contains("linger.ms=soon"));
    }

    /// A misspelt secret (`sasl.passwrd`) is no secret by name: the debug
    /// line shows no value of a property librdkafka does not know.
    #[test]
    fn unknown_properties_values_are_not_described() {
        let mut config = ClientConfig::new();
        config.set("sasl.passwrd", "hunter2").set("linger.ms", "7");
        let shown = describe(&config);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("linger.ms=7"), "{shown}");
    }

    /// Issue 24: a typo for `=` echoed the password.
    #[test]
    fn malformed_secret_property_is_not_echoed() {
        let error =
            KafkaSettings::new("a:1", None, &["sasl.password:hunter2".to_string()]).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("sasl.password"), "{text}");
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let missing = ["ssl.ca.location=/nonexistent/ca.pem".to_string()];
        let error = KafkaSettings::new("a:1", None, &missing).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("ssl.ca.location=/nonexistent/ca.pem: cannot read it"),
            "{text}"
        );
        let overridden = [
            "ssl.ca.location=/nonexistent".into(),
            "ssl.ca.location=probe".into(),
        ];
        assert!(KafkaSettings::new("a:1", None, &overridden).is_ok());
        for fine in [
            "ssl.ca.location=probe",
            "https.ca.location=probe",
            "ssl.engine.location=libengine.so",
            "ssl.ca.location=/etc",
            "linger.ms=/nope",
        ] {
            assert!(
                KafkaSettings::new("a:1", None, &[fine.to_string()]).is_ok(),
                "{fine}"
            );
        }
    }

    #[test]
    fn malformed_file_line_names_file_and_line_without_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.properties");
        std::fs::write(&file, "acks=all\nsasl.password hunter2\n").unwrap();
        let error = KafkaSettings::new("a:1", Some(&file), &[]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("c.properties:2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("found 'sasl.password [redacted]'"), "{text}");
    }
}
