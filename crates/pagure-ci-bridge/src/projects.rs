//! `pagure-ci-bridge projects add|list|check|remove`: onboarding without an infrastructure
//! change. The commands edit the project registry and the secrets document of a deployment
//! (S3 and Secrets Manager, found through the same `PCB_*` variables as the Lambdas) or of
//! local mode (the files its configuration names).
//!
//! Tokens are read from files or standard input, never from the command line (which `ps`
//! shows), and never printed.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use bridge_core::auth::Secret;
use bridge_core::config::{AcceptConfig, ProjectConfig, RegistryLocation, RegistrySetup};
use bridge_core::forge::RetryPolicy;
use bridge_core::model::TriggerKind;
use bridge_core::registry::{
    Registry, RegistryDocument, RegistryError, RegistrySource, RegistryStore, RuleSettings, RuleSource, StoredRegistry,
};
use bridge_pagure::PagureClient;
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

    fn read_now(&self) -> Result<Option<StoredRegistry>, RegistryError> {
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

fn hex(bytes: &[u8]) -> String {
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
    async fn read_registry(&self) -> Result<Option<StoredRegistry>, RegistryError> {
        match self {
            Backend::Local { registry, .. } => registry.read().await,
            Backend::Aws { registry, .. } => registry.read().await,
        }
    }

    async fn write_registry(&self, text: &str, expected: Option<&str>) -> Result<(), RegistryError> {
        match self {
            Backend::Local { registry, .. } => registry.write(text, expected).await,
            Backend::Aws { registry, .. } => registry.write(text, expected).await,
        }
    }

    fn registry_place(&self) -> String {
        match self {
            Backend::Local { registry, .. } => registry.describe(),
            Backend::Aws { registry, .. } => registry.describe(),
        }
    }

    fn secrets_place(&self) -> String {
        match self {
            Backend::Local { secrets, .. } => secrets.display().to_string(),
            Backend::Aws { secrets, .. } => format!("secret {}", secrets.secret_id()),
        }
    }

    /// The secrets document, shard by shard (local mode: one file, one shard).
    async fn read_secrets(&self) -> anyhow::Result<SecretShards> {
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
    async fn write_secrets(&self, secrets: &SecretShards) -> anyhow::Result<()> {
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
struct Part {
    shard: bridge_aws::SecretShard,
    document: Map<String, Value>,
    changed: bool,
}

/// The secrets document over its shards. A project's tokens stay in the shard that has them;
/// a new project goes to the first shard with room (a secret holds at most 64 KiB).
#[derive(Debug)]
pub struct SecretShards {
    parts: Vec<Part>,
}

/// Room left for a project's entry when a shard is chosen for it.
const SHARD_LIMIT_BYTES: usize = 60 * 1024;

/// Secrets Manager's limit on a secret's value.
const SECRET_MAX_BYTES: usize = 65_536;

/// A shard's text exactly as written (its size is what counts against the limit).
fn shard_text(document: &Map<String, Value>) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("JSON values always serialise");
    text.push('\n');
    text
}

impl SecretShards {
    /// The shards merged by the Lambdas' own rule (a project in two shards is refused).
    fn check(&self) -> Result<(), bridge_core::ports::SecretsError> {
        let texts: Vec<(String, Option<String>)> =
            self.parts.iter().map(|p| (p.shard.id.clone(), Some(shard_text(&p.document)))).collect();
        bridge_core::ports::merge_secret_shards(&texts).map(|_| ())
    }

    /// Every shard's projects and the shared tokens, as the Lambdas merge them.
    fn view(&self) -> Map<String, Value> {
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

    fn holding(&self, key: &str) -> Option<usize> {
        self.parts.iter().position(|p| p.document.get("projects").and_then(|e| e.get(key)).is_some())
    }

    /// The project's entry, in the shard that has it or the first with room.
    fn project_entry(&mut self, key: &str) -> anyhow::Result<&mut Map<String, Value>> {
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
    fn shared(&mut self) -> &mut Map<String, Value> {
        let part = &mut self.parts[0];
        part.changed = true;
        shared_tokens(&mut part.document)
    }

    fn remove_project(&mut self, key: &str) -> bool {
        let Some(index) = self.holding(key) else { return false };
        let part = &mut self.parts[index];
        part.changed = true;
        part.document.get_mut("projects").and_then(Value::as_object_mut).and_then(|p| p.remove(key)).is_some()
    }
}

/// Writes a file only its owner can read, replacing it whole.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
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

/// A deployment or local mode, ready for the commands.
#[derive(Debug)]
pub struct Projects {
    pub backend: Backend,
    /// Inline projects, the deployment's defaults, the rebuild phrases.
    pub setup: RegistrySetup,
    /// How Pagure is called (retries, time limit).
    pub retry: RetryPolicy,
    /// Where Pagure reaches the bridge, for the settings to paste.
    pub bridge_url: Option<String>,
}

/// A token given to `add`: read from a file or `-` (standard input).
fn read_token(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).with_context(|| format!("{what} from standard input"))?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("{what} from {}", path.display()))?;
    }
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{what}: expected one token (no spaces), got {} characters", text.len());
    }
    Ok(Secret::new(token.to_owned()))
}

/// What `add` sets on the rule; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct AddOptions {
    pub project: Option<String>,
    pub pipeline: Option<String>,
    pub untrusted_pipeline: Option<String>,
    pub buildspec: Option<String>,
    pub triggers: Option<Vec<TriggerKind>>,
    pub allow_forks: Option<bool>,
    pub approval_phrase: Option<String>,
    pub pagure_url: Option<String>,
    pub git_url: Option<String>,
    /// Name of a shared API token the rule uses (stored under it if a token is given too).
    pub shared_token_name: Option<String>,
    pub trigger_token_file: Option<PathBuf>,
    pub hook_token_file: Option<PathBuf>,
    pub pagure_api_token_file: Option<PathBuf>,
    /// Do not call Pagure (offline, or a Pagure the machine cannot reach).
    pub skip_pagure: bool,
}

impl AddOptions {
    /// Whether the options change a rule (tokens alone do not).
    fn sets_rule_fields(&self) -> bool {
        self.project.is_some()
            || self.pipeline.is_some()
            || self.untrusted_pipeline.is_some()
            || self.buildspec.is_some()
            || self.triggers.is_some()
            || self.allow_forks.is_some()
            || self.approval_phrase.is_some()
            || self.pagure_url.is_some()
            || self.git_url.is_some()
            || self.shared_token_name.is_some()
    }
}

fn say(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

impl Projects {
    fn compile(&self, document: &RegistryDocument) -> Result<Registry, RegistryError> {
        Registry::compile(&self.setup.inline, Some(document), &self.setup.deployment)
    }

    async fn document(&self) -> anyhow::Result<(RegistryDocument, Option<String>)> {
        match self.backend.read_registry().await? {
            Some(stored) => Ok((
                RegistryDocument::parse(&stored.text).with_context(|| self.backend.registry_place())?,
                Some(stored.version),
            )),
            None => Ok((RegistryDocument::default(), None)),
        }
    }

    fn client(&self) -> anyhow::Result<PagureClient> {
        Ok(PagureClient::new(self.retry)?)
    }

    /// `projects add KEY`: the rule, checked with the whole registry and on Pagure, then the
    /// tokens; prints what to paste into Pagure.
    pub async fn add(&self, key: &str, options: AddOptions) -> anyhow::Result<()> {
        if self.setup.inline.contains_key(key) {
            bail!("`{key}` is configured inline (the configuration file or PCB_PROJECTS): edit it there");
        }
        let trigger_token =
            options.trigger_token_file.as_deref().map(|p| read_token(p, "the trigger token")).transpose()?;
        let hook_token = options.hook_token_file.as_deref().map(|p| read_token(p, "the web-hook key")).transpose()?;
        let api_token =
            options.pagure_api_token_file.as_deref().map(|p| read_token(p, "the Pagure API token")).transpose()?;
        let is_pattern = key.contains('*');
        if is_pattern && (trigger_token.is_some() || hook_token.is_some())
            || is_pattern && api_token.is_some() && options.shared_token_name.is_none()
        {
            bail!(
                "tokens belong to one project: store them with `projects add <project> …` for each project `{key}` matches (a pattern may only carry a shared API token)"
            );
        }
        let (mut document, version) = self.document().await?;
        let existed = document.rule_mut(key).is_some();
        // A project a pattern already routes needs no rule of its own unless it differs.
        let routed_by_pattern = !is_pattern
            && !existed
            && self
                .compile(&document)
                .ok()
                .and_then(|r| r.lookup(key))
                .is_some_and(|(_, source)| matches!(source, RuleSource::Rule { matches, .. } if matches != key));
        let edit_rule = !routed_by_pattern || options.sets_rule_fields();
        if !edit_rule {
            return self.add_tokens_only(key, &document, trigger_token, hook_token, api_token, &options).await;
        }
        if !existed {
            document.rules.push(RuleSettings { matches: Some(key.to_owned()), ..RuleSettings::default() });
        }
        let rule = document.rule_mut(key).expect("just ensured");
        let set = |field: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                field.clone_from(value);
            }
        };
        set(&mut rule.project, &options.project);
        set(&mut rule.pipeline, &options.pipeline);
        set(&mut rule.untrusted_pipeline, &options.untrusted_pipeline);
        set(&mut rule.buildspec, &options.buildspec);
        set(&mut rule.approval_phrase, &options.approval_phrase);
        set(&mut rule.pagure_url, &options.pagure_url);
        set(&mut rule.git_url, &options.git_url);
        set(&mut rule.shared_pagure_api_token, &options.shared_token_name);
        if options.triggers.is_some() {
            rule.triggers.clone_from(&options.triggers);
        }
        if options.allow_forks.is_some() {
            rule.allow_forks = options.allow_forks;
        }
        let registry = self.compile(&document).map_err(|e| anyhow!("the rule for `{key}` is refused: {e}"))?;
        if is_pattern {
            self.backend.write_registry(&document.to_json(), version.as_deref()).await?;
            say(format!(
                "{} the pattern rule `{key}` in {}",
                if existed { "updated" } else { "added" },
                self.backend.registry_place()
            ));
            if let (Some(token), Some(name)) = (&api_token, &options.shared_token_name) {
                let mut secrets = self.backend.read_secrets().await?;
                secrets.shared().insert(name.clone(), json!(token.expose()));
                self.backend.write_secrets(&secrets).await?;
                say(format!("stored the shared API token `{name}` in {}", self.backend.secrets_place()));
            }
            say(
                "Each project it matches is built once its tokens are stored: pagure-ci-bridge projects add <namespace/name> --trigger-token-file - (the Pagure CI job name is the project's full name)",
            );
            return Ok(());
        }
        let (project, _) = registry
            .lookup(key)
            .ok_or_else(|| anyhow!("`{key}` is not a project key: segments of [A-Za-z0-9._+-] separated by '/'"))?;
        let mut secrets = self.backend.read_secrets().await?;
        let shared_name = project.shared_pagure_api_token.clone();
        let token_for_checks =
            api_token.clone().or_else(|| existing_api_token(&secrets.view(), key, shared_name.as_deref()));
        if options.skip_pagure {
            say("Pagure not called (--skip-pagure-check)");
        } else {
            self.check_on_pagure(&project, token_for_checks.as_ref()).await?;
        }
        self.backend.write_registry(&document.to_json(), version.as_deref()).await?;
        say(format!(
            "{} the rule for `{key}` in {}",
            if existed { "updated" } else { "added" },
            self.backend.registry_place()
        ));
        if trigger_token.is_some() || hook_token.is_some() || api_token.is_some() {
            let entry = secrets.project_entry(key)?;
            if let Some(token) = &trigger_token {
                entry.insert("trigger_token".into(), json!(token.expose()));
            }
            if let Some(token) = &hook_token {
                entry.insert("hook_token".into(), json!(token.expose()));
            }
            match (&api_token, &options.shared_token_name) {
                (Some(token), Some(name)) => {
                    secrets.shared().insert(name.clone(), json!(token.expose()));
                }
                (Some(token), None) => {
                    secrets.project_entry(key)?.insert("pagure_api_token".into(), json!(token.expose()));
                }
                (None, _) => {}
            }
            self.backend.write_secrets(&secrets).await?;
            say(format!("stored the given token(s) in {}", self.backend.secrets_place()));
        }
        self.print_pagure_settings(key, &project);
        let missing = self.missing_secrets(&secrets.view(), &project);
        if !missing.is_empty() {
            say(format!("still missing: {}", missing.join("; ")));
        }
        say("The bridge reads the registry again within its TTL (60 s by default in AWS).");
        Ok(())
    }

    /// `add` for a project a pattern routes: only its tokens are stored.
    async fn add_tokens_only(
        &self,
        key: &str,
        document: &RegistryDocument,
        trigger_token: Option<Secret>,
        hook_token: Option<Secret>,
        api_token: Option<Secret>,
        options: &AddOptions,
    ) -> anyhow::Result<()> {
        let (project, source) = self.compile(document)?.lookup(key).expect("routed by a pattern");
        say(format!("`{key}` is routed by {source}: it needs no rule of its own"));
        let mut secrets = self.backend.read_secrets().await?;
        let token_for_checks = api_token
            .clone()
            .or_else(|| existing_api_token(&secrets.view(), key, project.shared_pagure_api_token.as_deref()));
        if options.skip_pagure {
            say("Pagure not called (--skip-pagure-check)");
        } else {
            self.check_on_pagure(&project, token_for_checks.as_ref()).await?;
        }
        if trigger_token.is_some() || hook_token.is_some() || api_token.is_some() {
            let entry = secrets.project_entry(key)?;
            for (field, token) in
                [("trigger_token", &trigger_token), ("hook_token", &hook_token), ("pagure_api_token", &api_token)]
            {
                if let Some(token) = token {
                    entry.insert(field.into(), json!(token.expose()));
                }
            }
            self.backend.write_secrets(&secrets).await?;
            say(format!("stored the given token(s) in {}", self.backend.secrets_place()));
        }
        self.print_pagure_settings(key, &project);
        let missing = self.missing_secrets(&secrets.view(), &project);
        if !missing.is_empty() {
            say(format!("still missing: {}", missing.join("; ")));
        }
        Ok(())
    }

    async fn check_on_pagure(&self, project: &ProjectConfig, token: Option<&Secret>) -> anyhow::Result<()> {
        let client = self.client()?;
        let fullname = project.repo.fullname();
        let found = client
            .project(&project.pagure_url, &fullname, token)
            .await
            .with_context(|| format!("asking {} about `{fullname}`", project.pagure_url))?;
        match found {
            Some(name) if name == fullname => say(format!("Pagure at {} has `{fullname}`", project.pagure_url)),
            Some(name) => bail!("Pagure calls the project `{name}`, not `{fullname}`: use --project {name}"),
            None => bail!("Pagure at {} has no project `{fullname}` (HTTP 404)", project.pagure_url),
        }
        match token {
            Some(token) => {
                let user = client
                    .whoami(&project.pagure_url, token)
                    .await
                    .with_context(|| format!("checking the Pagure API token on {}", project.pagure_url))?;
                say(format!("the Pagure API token belongs to `{user}`: flags will be posted as that user"));
            }
            None => say("no Pagure API token for this project: its flags would only be logged"),
        }
        Ok(())
    }

    fn print_pagure_settings(&self, key: &str, project: &ProjectConfig) {
        let base = self.bridge_url.as_deref().map(|u| u.trim_end_matches('/').to_owned());
        let base = base.as_deref().unwrap_or("<the bridge's URL>");
        let settings = format!("{}{}/settings", project.pagure_url, project.repo.fullname());
        println!("In Pagure ({settings}):");
        if project.accepts(TriggerKind::Jenkins) {
            println!("  Hooks → Pagure CI: activate, type `jenkins`, URL {base}/jenkins/, job name `{key}`.");
            println!(
                "  Then store the token Pagure shows there: pagure-ci-bridge projects add {key} --trigger-token-file -"
            );
        }
        if project.accepts(TriggerKind::Webhook) {
            println!("  Project options → web-hooks: add {base}/webhook/{key}");
            println!(
                "  The key is on the \"Private Web Hook Key\" tab: pagure-ci-bridge projects add {key} --hook-token-file -"
            );
        }
        if project.accepts(TriggerKind::Json) {
            println!("  JSON trigger (scripts): POST {base}/trigger/{key} with `Authorization: token <trigger token>`");
        }
    }

    /// What this project still needs in the secrets document.
    fn missing_secrets(&self, secrets: &Map<String, Value>, project: &ProjectConfig) -> Vec<String> {
        let entry = secrets.get("projects").and_then(|p| p.get(&project.key));
        let has = |field: &str| entry.and_then(|e| e.get(field)).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
        let mut missing = Vec::new();
        // Pagure CI and web-hooks are alternatives: one door with its credential is enough.
        let token_door = project.accepts(TriggerKind::Jenkins) || project.accepts(TriggerKind::Json);
        let hook_door = project.accepts(TriggerKind::Webhook);
        if !(token_door && has("trigger_token") || hook_door && has("hook_token")) {
            missing.push(match (token_door, hook_door) {
                (true, true) => "the trigger token (Pagure CI's token): --trigger-token-file, or the web-hook key: --hook-token-file",
                (true, false) => "the trigger token (Pagure CI's token): --trigger-token-file",
                _ => "the web-hook key: --hook-token-file",
            }.to_owned());
        }
        if existing_api_token(secrets, &project.key, project.shared_pagure_api_token.as_deref()).is_none() {
            missing.push(match &project.shared_pagure_api_token {
                Some(name) => format!(
                    "the shared Pagure API token `{name}`: --shared-pagure-api-token {name} --pagure-api-token-file"
                ),
                None => "a Pagure API token (flags are only logged without one): --pagure-api-token-file".to_owned(),
            });
        }
        missing
    }

    /// `projects list`: every rule and inline project, with which secrets it has.
    pub async fn list(&self, as_json: bool) -> anyhow::Result<()> {
        let (document, _) = self.document().await?;
        let registry = self.compile(&document)?;
        let secrets = self.backend.read_secrets().await?.view();
        let mut rows = Vec::new();
        let mut inline: Vec<_> = self.setup.inline.keys().collect();
        inline.sort();
        let keys = inline.into_iter().map(|k| (k.clone(), "inline".to_owned())).chain(
            document.rules.iter().enumerate().filter_map(|(i, r)| Some((r.matches.clone()?, format!("rule {i}")))),
        );
        for (matches, source) in keys {
            let exact = registry.get(&matches);
            let row = match &exact {
                Some(project) => json!({
                    "match": matches, "source": source, "project": project.repo.fullname(),
                    "pipeline": project.pipeline, "untrusted_pipeline": project.untrusted_pipeline,
                    "triggers": project.triggers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                    "missing": self.missing_secrets(&secrets, project),
                }),
                None => json!({"match": matches, "source": source, "pattern": true}),
            };
            rows.push(row);
        }
        if as_json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        println!("{:<40} {:<10} {:<28} MISSING", "MATCH", "SOURCE", "PIPELINE (UNTRUSTED)");
        for row in &rows {
            let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let pipelines = match (text("pipeline"), text("untrusted_pipeline")) {
                (p, _) if p.is_empty() => "(pattern: per project)".to_owned(),
                (p, u) if u.is_empty() => p,
                (p, u) => format!("{p} ({u})"),
            };
            let missing = row.get("missing").and_then(Value::as_array).map_or(0, Vec::len);
            let missing = if row.get("pattern").is_some() { "-".to_owned() } else { missing.to_string() };
            println!("{:<40} {:<10} {:<28} {}", text("match"), text("source"), pipelines, missing);
        }
        say(format!("{} rule(s) in {}", document.rules.len(), self.backend.registry_place()));
        Ok(())
    }

    /// `projects check KEY`: which rule routes it and what it still lacks. `Ok(false)` when
    /// something is missing (the command exits 1).
    pub async fn check(&self, key: &str, skip_pagure: bool) -> anyhow::Result<bool> {
        let (document, _) = self.document().await?;
        let registry = self.compile(&document)?;
        let Some((project, source)) = registry.lookup(key) else {
            println!("✗ `{key}`: no rule matches it (add one: pagure-ci-bridge projects add {key})");
            return Ok(false);
        };
        println!("✓ `{key}` is routed by {source}: project `{}` on {}", project.repo.fullname(), project.pagure_url);
        println!(
            "  trusted builds: {}; untrusted builds: {}",
            project.pipeline,
            project.untrusted_pipeline.as_deref().map_or_else(
                || match &project.approval_phrase {
                    Some(phrase) => format!("none (wait for a committer's `{phrase}`)"),
                    None => "none (refused with an error flag)".to_owned(),
                },
                str::to_owned
            )
        );
        let secrets = self.backend.read_secrets().await?.view();
        let mut ok = true;
        for missing in self.missing_secrets(&secrets, &project) {
            println!("✗ missing {missing}");
            ok = false;
        }
        if !skip_pagure {
            let token = existing_api_token(&secrets, key, project.shared_pagure_api_token.as_deref());
            match self.check_on_pagure(&project, token.as_ref()).await {
                Ok(()) => {
                    println!("✓ Pagure knows the project{}", if token.is_some() { " and the API token" } else { "" })
                }
                Err(e) => {
                    println!("✗ {e:#}");
                    ok = false;
                }
            }
        }
        if ok {
            println!("✓ nothing missing");
        }
        Ok(ok)
    }

    /// `projects remove KEY`: its rule, and (unless kept) its secrets.
    pub async fn remove(&self, key: &str, keep_secrets: bool) -> anyhow::Result<()> {
        if self.setup.inline.contains_key(key) {
            bail!("`{key}` is configured inline (the configuration file or PCB_PROJECTS): remove it there");
        }
        let (mut document, version) = self.document().await?;
        let before = document.rules.len();
        document.rules.retain(|r| r.matches.as_deref() != Some(key));
        if document.rules.len() < before {
            self.compile(&document)?;
            self.backend.write_registry(&document.to_json(), version.as_deref()).await?;
            say(format!("removed the rule `{key}` from {}", self.backend.registry_place()));
        } else if keep_secrets || self.compile(&document)?.lookup(key).is_none() {
            bail!("no rule matches exactly `{key}` in {}", self.backend.registry_place());
        }
        let registry = self.compile(&document)?;
        if let Some((_, source)) = registry.lookup(key) {
            // A pattern still routes it: without its tokens, its triggers are refused.
            say(format!("note: `{key}` is still routed by {source}"));
        }
        if !keep_secrets {
            let mut secrets = self.backend.read_secrets().await?;
            if secrets.remove_project(key) {
                self.backend.write_secrets(&secrets).await?;
                say(format!("removed its tokens from {}", self.backend.secrets_place()));
            }
        }
        Ok(())
    }
}

fn project_secrets<'a>(secrets: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
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

fn shared_tokens(secrets: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let shared = secrets.entry("shared_pagure_api_tokens").or_insert_with(|| json!({}));
    if !shared.is_object() {
        *shared = json!({});
    }
    shared.as_object_mut().expect("an object")
}

/// The API token flags for `key` would be posted with: its own, else the shared one named.
fn existing_api_token(secrets: &Map<String, Value>, key: &str, shared: Option<&str>) -> Option<Secret> {
    let own = secrets.get("projects").and_then(|p| p.get(key)).and_then(|e| e.get("pagure_api_token"));
    let shared = shared.and_then(|name| secrets.get("shared_pagure_api_tokens").and_then(|s| s.get(name)));
    own.or(shared).and_then(Value::as_str).filter(|t| !t.is_empty()).map(|t| Secret::new(t.to_owned()))
}

/// Local mode's projects, from its configuration file.
pub fn local(config_path: &Path) -> anyhow::Result<Projects> {
    let config = crate::load_config(config_path)?;
    let setup = config.accept.registry.clone().ok_or_else(|| {
        anyhow!(
            "{} has no [registry] table: add one (file = \"registry.json\") to manage projects with this command",
            config_path.display()
        )
    })?;
    let RegistryLocation::File(path) = &setup.location else { bail!("local mode's registry is a file") };
    let backend = Backend::Local { registry: FileRegistry::new(path), secrets: config.secrets_file.clone() };
    Ok(Projects { backend, bridge_url: Some(format!("http://{}", config.listen)), retry: config.report.retry, setup })
}

/// A deployment's projects, from the `PCB_*` variables its stack prints (and the default
/// AWS credentials chain).
pub async fn deployed(get: impl Fn(&str) -> Option<String>, bridge_url: Option<String>) -> anyhow::Result<Projects> {
    let config = bridge_core::config::AdminConfig::from_env(&get)?;
    let setup = config.accept.registry.clone().expect("AdminConfig requires a registry");
    let RegistryLocation::S3 { bucket, key } = &setup.location else { bail!("a deployment's registry is in S3") };
    let aws = aws_config::load_from_env().await;
    let backend = Backend::Aws {
        registry: bridge_aws::S3Registry::new(aws_sdk_s3::Client::new(&aws), bucket, key),
        secrets: bridge_aws::SecretsManagerEditor::new(aws_sdk_secretsmanager::Client::new(&aws), config.secret_id)
            .sharded(config.secret_shards),
    };
    Ok(Projects { backend, setup, retry: config.report.retry, bridge_url })
}

#[cfg(test)]
mod tests;
