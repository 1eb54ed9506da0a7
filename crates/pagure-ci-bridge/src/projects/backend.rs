//! Where a deployment keeps its projects: the registry (a file, or an S3 object) and the
//! secrets document (a file, or Secrets Manager secrets in shards).

use std::path::{Path, PathBuf};

use super::*;
use anyhow::{anyhow, bail};
use bridge_core::config::{AcceptConfig, RegistryLocation, RegistrySetup};
use bridge_core::registry::{RegistryError, RegistrySource, RegistryStore, StoredRegistry};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The registry as a file (local mode): its version is the SHA-256 of its bytes.
#[derive(Debug, Clone)]
pub struct FileRegistry {
    path: PathBuf,
}

impl FileRegistry {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRegistry { path: path.into() }
    }

    pub(super) fn read_now(&self) -> Result<Option<StoredRegistry>, RegistryError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let version = hex(&Sha256::digest(&bytes));
                let text = String::from_utf8(bytes).map_err(|_| RegistryError::Invalid {
                    at: self.describe(),
                    message: "the document is not UTF-8".into(),
                })?;
                Ok(Some(StoredRegistry { text, version }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Unavailable(format!("{}: {e}", self.describe()).into())),
        }
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RegistryStore for FileRegistry {
    async fn read(&self) -> Result<Option<StoredRegistry>, RegistryError> {
        self.read_now()
    }

    async fn write(&self, text: &str, expected: Option<&str>) -> Result<(), RegistryError> {
        let current = self.read_now()?.map(|s| s.version);
        if current.as_deref() != expected {
            return Err(RegistryError::Conflict(self.describe()));
        }
        // Written beside and renamed: a reader never sees half a document.
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| RegistryError::Unavailable(format!("{}: {e}", self.describe()).into()))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

impl RegistrySource for FileRegistry {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<String>, RegistryError>> + Send + '_>> {
        Box::pin(async move { Ok(self.read_now()?.map(|s| s.text)) })
    }
}

/// `accept` with its projects read through the registry file, when it names one.
pub fn with_registry(accept: &AcceptConfig) -> AcceptConfig {
    let mut accept = accept.clone();
    if let Some(RegistrySetup { location: RegistryLocation::File(path), .. }) = &accept.registry {
        let source = FileRegistry::new(path);
        RegistrySetup::attach(&mut accept, source);
    }
    accept
}

/// Where the commands work: a deployment or local mode.
#[derive(Debug)]
pub enum Backend {
    Local { registry: FileRegistry, secrets: PathBuf },
    Aws { registry: bridge_aws::S3Registry, secrets: bridge_aws::SecretsManagerEditor },
}

impl Backend {
    pub(super) async fn read_registry(&self) -> Result<Option<StoredRegistry>, RegistryError> {
        match self {
            Backend::Local { registry, .. } => registry.read().await,
            Backend::Aws { registry, .. } => registry.read().await,
        }
    }

    pub(super) async fn write_registry(&self, text: &str, expected: Option<&str>) -> Result<(), RegistryError> {
        match self {
            Backend::Local { registry, .. } => registry.write(text, expected).await,
            Backend::Aws { registry, .. } => registry.write(text, expected).await,
        }
    }

    pub(super) fn registry_place(&self) -> String {
        match self {
            Backend::Local { registry, .. } => registry.describe(),
            Backend::Aws { registry, .. } => registry.describe(),
        }
    }

    pub(super) fn secrets_place(&self) -> String {
        match self {
            Backend::Local { secrets, .. } => secrets.display().to_string(),
            Backend::Aws { secrets, .. } => format!("secret {}", secrets.secret_id()),
        }
    }

    /// The secrets document, shard by shard (local mode: one file, one shard).
    pub(super) async fn read_secrets(&self) -> anyhow::Result<SecretShards> {
        let shards = match self {
            Backend::Local { secrets, .. } => {
                let text = match std::fs::read_to_string(secrets) {
                    Ok(text) => Some(text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => bail!("{}: {e}", secrets.display()),
                };
                vec![bridge_aws::SecretShard { id: secrets.display().to_string(), text, version: None }]
            }
            Backend::Aws { secrets, .. } => secrets.read_shards().await.map_err(anyhow::Error::msg)?,
        };
        let mut parts = Vec::with_capacity(shards.len());
        for shard in shards {
            let document = match shard.text.as_deref().filter(|t| !t.trim().is_empty()) {
                None => Map::new(),
                Some(text) => {
                    // Checked as the bridge reads it; the error names a place, never a value.
                    bridge_core::ports::SecretsDocument::parse(text).with_context(|| shard.id.clone())?;
                    match serde_json::from_str(text) {
                        Ok(Value::Object(map)) => map,
                        _ => bail!("{}: not a JSON object", shard.id),
                    }
                }
            };
            parts.push(Part { shard, document, changed: false });
        }
        let shards = SecretShards { parts };
        // Refused here as the Lambdas would refuse it (a project in two shards, say), before
        // an edit makes it worse.
        shards.check().with_context(|| self.secrets_place())?;
        Ok(shards)
    }

    /// Writes the shards that changed, each only if nobody else changed it since it was read.
    pub(super) async fn write_secrets(&self, secrets: &SecretShards) -> anyhow::Result<()> {
        // The edited document as the Lambdas will merge it: never write what they would refuse.
        secrets.check().context("the edited secrets document")?;
        for part in secrets.parts.iter().filter(|p| p.changed) {
            let text = shard_text(&part.document);
            if text.len() > SECRET_MAX_BYTES {
                bail!(
                    "{} would hold {} bytes, over Secrets Manager's {SECRET_MAX_BYTES}: raise the stack's SecretShards (PCB_SECRET_SHARDS)",
                    part.shard.id,
                    text.len()
                );
            }
            match self {
                Backend::Local { secrets, .. } => write_private(secrets, &text)?,
                Backend::Aws { secrets, .. } => {
                    secrets.write_shard(&part.shard, &text).await.map_err(anyhow::Error::msg)?;
                }
            }
        }
        Ok(())
    }
}

/// One shard of the secrets document as read, and its edits.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) shard: bridge_aws::SecretShard,
    pub(super) document: Map<String, Value>,
    pub(super) changed: bool,
}

/// The secrets document over its shards. A project's tokens stay in the shard that has them;
/// a new project goes to the first shard with room (a secret holds at most 64 KiB).
#[derive(Debug)]
pub struct SecretShards {
    pub(super) parts: Vec<Part>,
}

/// Room left for a project's entry when a shard is chosen for it.
pub(super) const SHARD_LIMIT_BYTES: usize = 60 * 1024;

/// Secrets Manager's limit on a secret's value.
pub(super) const SECRET_MAX_BYTES: usize = 65_536;

/// A shard's text exactly as written (its size is what counts against the limit).
pub(super) fn shard_text(document: &Map<String, Value>) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("JSON values always serialise");
    text.push('\n');
    text
}

impl SecretShards {
    /// The shards merged by the Lambdas' own rule (a project in two shards is refused).
    pub(super) fn check(&self) -> Result<(), bridge_core::ports::SecretsError> {
        let texts: Vec<(String, Option<String>)> =
            self.parts.iter().map(|p| (p.shard.id.clone(), Some(shard_text(&p.document)))).collect();
        bridge_core::ports::merge_secret_shards(&texts).map(|_| ())
    }

    /// Every shard's projects and the shared tokens, as the Lambdas merge them.
    pub(super) fn view(&self) -> Map<String, Value> {
        let mut projects = Map::new();
        for part in &self.parts {
            if let Some(Value::Object(entries)) = part.document.get("projects") {
                projects.extend(entries.clone());
            }
        }
        let mut view = Map::new();
        view.insert("projects".into(), Value::Object(projects));
        if let Some(shared) = self.parts.first().and_then(|p| p.document.get("shared_pagure_api_tokens")) {
            view.insert("shared_pagure_api_tokens".into(), shared.clone());
        }
        view
    }

    pub(super) fn holding(&self, key: &str) -> Option<usize> {
        self.parts.iter().position(|p| p.document.get("projects").and_then(|e| e.get(key)).is_some())
    }

    /// The project's entry, in the shard that has it or the first with room.
    pub(super) fn project_entry(&mut self, key: &str) -> anyhow::Result<&mut Map<String, Value>> {
        let index = match self.holding(key) {
            Some(index) => index,
            None => self
                .parts
                .iter()
                .position(|p| shard_text(&p.document).len() + 1024 < SHARD_LIMIT_BYTES)
                .ok_or_else(|| {
                    anyhow!(
                        "every secret shard is full ({} of them): raise the stack's SecretShards (PCB_SECRET_SHARDS)",
                        self.parts.len()
                    )
                })?,
        };
        let part = &mut self.parts[index];
        part.changed = true;
        Ok(project_secrets(&mut part.document, key))
    }

    /// The shared API tokens: always in the first shard.
    pub(super) fn shared(&mut self) -> &mut Map<String, Value> {
        let part = &mut self.parts[0];
        part.changed = true;
        shared_tokens(&mut part.document)
    }

    pub(super) fn remove_project(&mut self, key: &str) -> bool {
        let Some(index) = self.holding(key) else { return false };
        let part = &mut self.parts[index];
        part.changed = true;
        part.document.get_mut("projects").and_then(Value::as_object_mut).and_then(|p| p.remove(key)).is_some()
    }
}

/// Writes a file only its owner can read, replacing it whole.
pub(super) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).with_context(|| temporary.display().to_string())?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| path.display().to_string())
}

pub(super) fn project_secrets<'a>(secrets: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let projects = secrets.entry("projects").or_insert_with(|| json!({}));
    if !projects.is_object() {
        *projects = json!({});
    }
    let entry = projects.as_object_mut().expect("an object").entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("an object")
}

pub(super) fn shared_tokens(secrets: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let shared = secrets.entry("shared_pagure_api_tokens").or_insert_with(|| json!({}));
    if !shared.is_object() {
        *shared = json!({});
    }
    shared.as_object_mut().expect("an object")
}

/// The API token flags for `key` would be posted with: its own, else the shared one named.
pub(super) fn existing_api_token(secrets: &Map<String, Value>, key: &str, shared: Option<&str>) -> Option<Secret> {
    let own = secrets.get("projects").and_then(|p| p.get(key)).and_then(|e| e.get("pagure_api_token"));
    let shared = shared.and_then(|name| secrets.get("shared_pagure_api_tokens").and_then(|s| s.get(name)));
    own.or(shared).and_then(Value::as_str).filter(|t| !t.is_empty()).map(|t| Secret::new(t.to_owned()))
}
