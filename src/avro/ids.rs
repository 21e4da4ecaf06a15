//! Writer schemas by Confluent schema id: from a registry (cached in memory
//! and, with `--registry-cache`, on disk, so a consumer restarts without the
//! registry), or offline from a folder laid out as Rubin publishes its
//! schemas (`--schema-dir`: id = major*100 + minor, `DIR/MAJOR/MINOR/*.avsc`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use super::gate::Writer;
use super::registry::{Registry, RegistryError};
use crate::durable::Pending;

/// A message whose schema id names no usable schema. With `stop` (the
/// default, `--on-unknown-schema stop`) the consumer stops before it;
/// otherwise it is skipped and counted, and the id reported once.
#[derive(Debug)]
pub struct UnknownSchemaId {
    pub id: u32,
    pub why: String,
    pub stop: bool,
    /// A schema came for it and the gate refused it (reason `schema`).
    pub hostile: bool,
}

impl std::fmt::Display for UnknownSchemaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hostile {
            true => write!(f, "schema id {} refused: {}", self.id, self.why),
            false => write!(f, "unknown schema id {} ({})", self.id, self.why),
        }
    }
}

impl std::error::Error for UnknownSchemaId {}

/// The registry cannot answer for an id that is not cached: the consumer
/// stops there (exit 1) rather than skip alerts a registry could decode.
#[derive(Debug)]
pub struct RegistryUnavailable(pub String);

impl std::fmt::Display for RegistryUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RegistryUnavailable {}

/// Attempts at an id the registry did not answer before giving up.
const ATTEMPTS: u32 = 3;

/// Where writer schemas come from, by id.
#[derive(Debug, Default)]
pub struct SchemaIds {
    registry: Option<Registry>,
    /// `--registry-cache DIR`, narrowed to this registry's folder.
    cache: Option<PathBuf>,
    /// `--schema-dir DIR`.
    folder: Option<PathBuf>,
    known: Mutex<HashMap<u32, Arc<Writer>>>,
    /// Ids found wanting, with why and whether their schema was refused as
    /// hostile (then skipped whatever --on-unknown-schema says).
    refused: Mutex<HashMap<u32, (String, bool)>>,
    said_down: AtomicBool,
    /// `--on-unknown-schema skip`.
    skip_unknown: bool,
}

impl SchemaIds {
    pub fn new(
        registry: Option<Registry>,
        cache: Option<&Path>,
        folder: Option<PathBuf>,
        skip_unknown: bool,
    ) -> Result<Self> {
        let cache = match (cache, &registry) {
            (Some(dir), Some(registry)) => {
                let dir = dir.join(cache_folder(registry.url()));
                std::fs::create_dir_all(&dir).map_err(|e| {
                    crate::exit::bad_input(format!(
                        "--registry-cache {}: cannot create it: {e}",
                        dir.display()
                    ))
                })?;
                Some(dir)
            }
            _ => None,
        };
        Ok(Self {
            registry,
            cache,
            folder,
            skip_unknown,
            ..Self::default()
        })
    }

    /// The writer schema `id` names, checked and compiled.
    pub fn writer(&self, id: u32) -> Result<Arc<Writer>> {
        if let Some(writer) = lock(&self.known).get(&id) {
            return Ok(writer.clone());
        }
        if let Some((why, hostile)) = lock(&self.refused).get(&id) {
            return Err(self.unknown(id, why.clone(), *hostile));
        }
        match self.find(id) {
            Ok(writer) => {
                let writer = Arc::new(writer);
                lock(&self.known).insert(id, writer.clone());
                Ok(writer)
            }
            Err(Found::Down(why)) => Err(RegistryUnavailable(why).into()),
            Err(Found::Refused(why)) => Err(crate::exit::Exit {
                code: crate::exit::FAILURE,
                message: why,
            }
            .into()),
            Err(Found::Unknown(why)) => self.refuse(id, why, false),
            Err(Found::Hostile(why)) => self.refuse(id, why, true),
        }
    }

    /// Remembers an id found wanting. A schema refused as hostile is skipped
    /// like any hostile message; an id nobody knows stops the consumer
    /// unless `--on-unknown-schema skip`.
    fn refuse(&self, id: u32, why: String, hostile: bool) -> Result<Arc<Writer>> {
        if hostile || self.skip_unknown {
            let reason = if hostile { "schema" } else { "unknown_schema" };
            tracing::warn!(
                "schema id {id} cannot be used ({why}); its messages are skipped, each counted under reason {reason}"
            );
        }
        lock(&self.refused).insert(id, (why.clone(), hostile));
        Err(self.unknown(id, why, hostile))
    }

    fn unknown(&self, id: u32, why: String, hostile: bool) -> anyhow::Error {
        UnknownSchemaId {
            id,
            why,
            stop: !hostile && !self.skip_unknown,
            hostile,
        }
        .into()
    }

    fn find(&self, id: u32) -> Result<Writer, Found> {
        if let Some(text) = self.cached(id) {
            return parse(&text, "the --registry-cache copy");
        }
        if let Some(registry) = &self.registry {
            match self.ask(registry, id) {
                Ok(text) => {
                    let writer = parse(&text, registry.url())?;
                    self.keep(id, &text);
                    return Ok(writer);
                }
                Err(RegistryError::NotFound(why)) if self.folder.is_none() => {
                    return Err(Found::Unknown(why))
                }
                Err(RegistryError::NotFound(_)) => {}
                Err(RegistryError::Refused(why)) => return Err(Found::Refused(why)),
                Err(RegistryError::Unreachable(why)) if self.folder.is_none() => {
                    return Err(Found::Down(format!(
                        "{why}; schema id {id} is not cached: stopping before its message (give --registry-cache DIR to keep schemas across restarts)"
                    )))
                }
                Err(RegistryError::Unreachable(_)) => {}
            }
        }
        match &self.folder {
            Some(folder) => from_folder(folder, id),
            None => Err(Found::Unknown(
                "no --schema-registry or --schema-dir to look it up in".into(),
            )),
        }
    }

    /// Asks the registry, a few times if it does not answer; says once that
    /// it is down (consumers carry on with the schemas they have).
    fn ask(&self, registry: &Registry, id: u32) -> Result<String, RegistryError> {
        let mut wait = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match registry.schema_by_id(id) {
                Err(RegistryError::Unreachable(why)) if attempt < ATTEMPTS => {
                    if !self.said_down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "{why}; carrying on with the {} schema(s) already known",
                            lock(&self.known).len()
                        );
                    }
                    std::thread::sleep(wait);
                    wait *= 3;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    fn cached(&self, id: u32) -> Option<String> {
        let path = self.cache.as_ref()?.join(format!("{id}.avsc"));
        std::fs::read_to_string(path).ok()
    }

    /// Writes the schema to the disk cache (whole or not at all).
    fn keep(&self, id: u32, text: &str) {
        let Some(dir) = &self.cache else { return };
        let written = Pending::unique(dir, &format!("{id}.avsc")).and_then(|pending| {
            let mut file = pending.create()?;
            file.write_all(text.as_bytes())?;
            pending.commit(file)
        });
        if let Err(e) = written {
            tracing::warn!("cannot cache schema id {id} in {}: {e:#}", dir.display());
        }
    }
}

/// Why no schema came for an id.
enum Found {
    Unknown(String),
    /// A schema came, and the decode gate refused it.
    Hostile(String),
    Refused(String),
    Down(String),
}

fn parse(text: &str, from: &str) -> Result<Writer, Found> {
    Writer::parse_as(text.as_bytes(), &format!("the schema {from} gave"))
        .map_err(|e| Found::Hostile(e.to_string()))
}

/// Rubin's layout: id 703 is `DIR/7/3/`, its `.avsc` files combined.
fn from_folder(folder: &Path, id: u32) -> Result<Writer, Found> {
    let dir = folder
        .join((id / 100).to_string())
        .join((id % 100).to_string());
    if !dir.is_dir() {
        return Err(Found::Unknown(format!(
            "no folder {} for it in --schema-dir (id = major*100 + minor)",
            dir.display()
        )));
    }
    let schema = super::schema::load(std::slice::from_ref(&dir))
        .map_err(|e| Found::Hostile(format!("{}: {e}", dir.display())))?;
    Writer::from_schema(schema).map_err(|e| Found::Hostile(format!("{}: {e}", dir.display())))
}

/// A folder name for one registry's cache: ids mean nothing across registries.
fn cache_folder(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_folders_are_plain_names() {
        assert_eq!(
            cache_folder("http://127.0.0.1:8081/apis/ccompat/v7"),
            "127.0.0.1_8081_apis_ccompat_v7"
        );
    }

    #[test]
    fn without_sources_an_id_is_unknown_once() {
        let ids = SchemaIds::default();
        for _ in 0..2 {
            let error = ids.writer(7).unwrap_err();
            assert!(error.is::<UnknownSchemaId>(), "{error}");
        }
    }

    /// Whether looking `id` up fails with an unknown id that stops the consumer.
    fn stops(ids: &SchemaIds, id: u32) -> bool {
        let error = ids.writer(id).unwrap_err();
        error
            .downcast_ref::<UnknownSchemaId>()
            .expect("an unknown id")
            .stop
    }

    #[test]
    fn a_rubin_layout_folder_maps_ids() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("7/3");
        std::fs::create_dir_all(&version).unwrap();
        std::fs::write(
            version.join("a.avsc"),
            r#"{"type":"record","name":"a","fields":[{"name":"x","type":"int"}]}"#,
        )
        .unwrap();
        let ids = SchemaIds::new(None, None, Some(dir.path().into()), false).unwrap();
        assert!(ids.writer(703).is_ok());
        assert!(stops(&ids, 704), "an id nobody knows stops by default");
        assert!(stops(&ids, 704), "and again, from the refused ids");
        let skipping = SchemaIds::new(None, None, Some(dir.path().into()), true).unwrap();
        assert!(!stops(&skipping, 704), "--on-unknown-schema skip");
        std::fs::write(version.join("a.avsc"), "{not json").unwrap();
        let ids = SchemaIds::new(None, None, Some(dir.path().into()), false).unwrap();
        assert!(!stops(&ids, 703), "a schema refused as hostile is skipped");
    }
}
