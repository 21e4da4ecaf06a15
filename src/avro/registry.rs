//! A client of a Confluent-compatible schema registry (Confluent's own,
//! Apicurio's `/apis/ccompat/v7`, Karapace, Redpanda): schemas by id, and
//! registering a writer schema under a subject. Answers are hostile input
//! like any message: bounded in size, parsed, never trusted to be Avro.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Result};
use base64::Engine;
use serde_json::Value as Json;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::exit::bad_input;

/// The largest registry answer read: Rubin's alert schema is ~100 KB.
const MAX_ANSWER_BYTES: u64 = 8 << 20;

/// How long one request may take before the registry counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach a registry (`--schema-registry`, `--registry-auth-file`, `--registry-ca`).
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub url: String,
    pub auth_file: Option<std::path::PathBuf>,
    pub ca: Option<std::path::PathBuf>,
}

/// Why a request failed: the caller treats each differently.
#[derive(Debug)]
pub enum RegistryError {
    /// 404: the registry does not have it.
    NotFound(String),
    /// 401 or 403: fatal, the credentials are wrong.
    Refused(String),
    /// The registry could not be reached or answered nonsense: try later.
    Unreachable(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound(why) | Self::Refused(why) | Self::Unreachable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RegistryError {}

/// A schema registry's Confluent REST API.
pub struct Registry {
    agent: ureq::Agent,
    /// The base URL without credentials: what messages name.
    base: String,
    authorization: Option<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Registry({})", self.base)
    }
}

impl Registry {
    /// Checks the options; contacts nothing yet.
    pub fn new(options: &RegistryOptions) -> Result<Self> {
        let (base, user_info) = split_user_info(&options.url)?;
        let user_info = match &options.auth_file {
            Some(path) => Some(read_auth_file(path)?),
            None => user_info,
        };
        let authorization = user_info.map(|user_password| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_password)
            )
        });
        let roots = match &options.ca {
            Some(path) => RootCerts::new_with_certs(&[read_ca(path)?]),
            None => RootCerts::PlatformVerifier,
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("alertstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            base,
            authorization,
        })
    }

    /// The registry's URL without credentials.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The schema text registered under `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let answer = self.call("GET", &format!("/schemas/ids/{id}"), None)?;
        if let Some(kind) = answer.get("schemaType").and_then(Json::as_str) {
            if kind != "AVRO" {
                return Err(RegistryError::NotFound(format!(
                    "schema id {id} in {} is a {kind} schema, not Avro",
                    self.base
                )));
            }
        }
        if answer
            .get("references")
            .and_then(Json::as_array)
            .is_some_and(|r| !r.is_empty())
        {
            return Err(RegistryError::NotFound(format!(
                "schema id {id} in {} refers to other subjects, which alertstream does not follow; register it self-contained",
                self.base
            )));
        }
        match answer.get("schema") {
            Some(Json::String(text)) => Ok(text.clone()),
            _ => Err(RegistryError::Unreachable(format!(
                "{} answered schema id {id} without a \"schema\" text",
                self.base
            ))),
        }
    }

    /// Registers `schema` under `subject` (or finds it there); returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let path = format!(
            "/subjects/{}/versions",
            percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC)
        );
        let body = serde_json::json!({ "schema": schema }).to_string();
        let answer = self.call("POST", &path, Some(body))?;
        answer
            .get("id")
            .and_then(Json::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| {
                RegistryError::Unreachable(format!(
                    "{} answered a registration under {subject} without an id",
                    self.base
                ))
            })
    }

    /// One request; the answer's JSON, or why there is none.
    fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<Json, RegistryError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: &dyn std::fmt::Display| {
            RegistryError::Unreachable(format!("schema registry {}: {e}", self.base))
        };
        let content_type = "application/vnd.schemaregistry.v1+json";
        let mut response = match (method, body) {
            ("POST", Some(body)) => {
                let mut request = self.agent.post(&url).header("Content-Type", content_type);
                if let Some(auth) = &self.authorization {
                    request = request.header("Authorization", auth);
                }
                request.send(body.as_bytes())
            }
            _ => {
                let mut request = self.agent.get(&url).header("Accept", content_type);
                if let Some(auth) = &self.authorization {
                    request = request.header("Authorization", auth);
                }
                request.call()
            }
        }
        .map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| unreachable(&e))?;
        let json: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        let message = json
            .get("message")
            .and_then(Json::as_str)
            .map(|m| m.chars().take(300).collect::<String>())
            .unwrap_or_default();
        match status {
            200..=299 if json.is_object() => Ok(json),
            200..=299 => Err(unreachable(&"answered something other than a JSON object")),
            401 | 403 => Err(RegistryError::Refused(format!(
                "schema registry {} refused the credentials (HTTP {status}): check the user and password in the URL or --registry-auth-file",
                self.base
            ))),
            404 => Err(RegistryError::NotFound(format!(
                "schema registry {}: {path} not found ({message})",
                self.base
            ))),
            _ => Err(RegistryError::Unreachable(format!(
                "schema registry {} answered HTTP {status} to {method} {path}: {message}",
                self.base
            ))),
        }
    }
}

/// Splits `https://user:password@host/path` into the URL without
/// credentials and the decoded `user:password`.
fn split_user_info(url: &str) -> Result<(String, Option<String>)> {
    let url = url.trim().trim_end_matches('/');
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad_input(
            "--schema-registry: give an http:// or https:// URL, e.g. http://127.0.0.1:8081",
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(bad_input(format!(
            "--schema-registry: {scheme}:// is not http:// or https://"
        )));
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return Ok((url.to_string(), None));
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| bad_input("--schema-registry: the URL's user info is not UTF-8"))
    };
    let user_info = match user_info.split_once(':') {
        Some((user, password)) => format!("{}:{}", decode(user)?, decode(password)?),
        None => decode(user_info)?,
    };
    Ok((format!("{scheme}://{host}{path}"), Some(user_info)))
}

/// `--registry-auth-file`: one line `user:password` (Confluent's
/// basic.auth.user.info), kept out of the command line and the environment.
fn read_auth_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad_input(format!(
            "--registry-auth-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or_default().trim();
    if !line.contains(':') {
        return Err(bad_input(format!(
            "--registry-auth-file {}: give one line user:password",
            path.display()
        )));
    }
    Ok(line.to_string())
}

fn read_ca(path: &Path) -> Result<Certificate<'static>> {
    let pem = std::fs::read(path).map_err(|e| {
        bad_input(format!(
            "--registry-ca {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    Certificate::from_pem(&pem).map_err(|e| {
        anyhow!(bad_input(format!(
            "--registry-ca {}: not a PEM certificate: {e}",
            path.display()
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_url() {
        let (base, user) =
            split_user_info("https://alice:p%40ss@reg.example:8081/apis/ccompat/v7/").unwrap();
        assert_eq!(base, "https://reg.example:8081/apis/ccompat/v7");
        assert_eq!(user.as_deref(), Some("alice:p@ss"));
        let (base, user) = split_user_info("http://127.0.0.1:8081").unwrap();
        assert_eq!((base.as_str(), user), ("http://127.0.0.1:8081", None));
        assert!(split_user_info("127.0.0.1:8081").is_err());
        assert!(split_user_info("ftp://x").is_err());
        let registry = Registry::new(&RegistryOptions {
            url: "http://bob:secret@h:1".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(!format!("{registry:?}").contains("secret"));
    }
}
