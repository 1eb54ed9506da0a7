//! The secrets document: every project's tokens, read through the [`Secrets`] port. Secrets
//! Manager in AWS (`bridge-aws`, behind [`CachedSecrets`]), a file in local mode
//! (`bridge-local`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::ErrorCause;
use crate::auth::Secret;
use crate::retry::{Retry, Transience};

/// One project's secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSecrets {
    /// The `pagure_ci_token` of the project's "Pagure CI" settings (Jenkins `token=`), also
    /// accepted as `Authorization: token …` on the JSON trigger.
    pub trigger_token: Option<Secret>,
    /// The project's web-hook key (`hook_token`), for `X-Pagure-Signature-256`.
    pub hook_token: Option<Secret>,
    /// A Pagure API token with `commit_flag` and `pull_request_flag`, for reporting.
    pub pagure_api_token: Option<Secret>,
    /// Pagure CI's `ci_username`/`ci_password`: when both are set, Jenkins-style calls must
    /// carry them as HTTP Basic credentials.
    pub jenkins_username: Option<String>,
    pub jenkins_password: Option<Secret>,
    /// HTTP credentials for cloning a private repository.
    pub git_username: Option<String>,
    pub git_password: Option<Secret>,
}

/// The whole secret: `{"projects": {"<key>": {…}}, "shared_pagure_api_tokens": {"<name>": …}}`.
/// One Secrets Manager secret holds it in Lambda; a JSON file (or the `PCB_SECRETS_JSON`
/// variable) holds it in local mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsDocument {
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSecrets>,
    /// Pagure API tokens several projects share (one bot account for many projects), by the
    /// name registry rules give them in `shared_pagure_api_token`.
    #[serde(default)]
    pub shared_pagure_api_tokens: BTreeMap<String, Secret>,
}

impl SecretsDocument {
    /// Parses the document. The error never quotes the text (it holds secrets): only where
    /// and what kind of problem.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        crate::json::from_str(text).map_err(|e| {
            SecretsError::Malformed(format!("line {} column {}: {:?} error", e.line(), e.column(), e.classify()))
        })
    }

    pub fn project(&self, key: &str) -> Option<&ProjectSecrets> {
        self.projects.get(key)
    }

    /// The token flags for `key` are posted with: its own, else the shared one named.
    pub fn pagure_api_token(&self, key: &str, shared: Option<&str>) -> Option<&Secret> {
        self.project(key)
            .and_then(|p| p.pagure_api_token.as_ref())
            .or_else(|| shared.and_then(|name| self.shared_pagure_api_tokens.get(name)))
    }
}

/// The id of shard `index` of the secrets document: the base secret itself, then secrets
/// named `<base>-shard-<i>`. One Secrets Manager secret holds at most 64 KiB (about 380
/// projects' tokens); a forge spreads its projects over several, and readers merge them.
pub fn shard_secret_id(base: &str, index: u32) -> String {
    if index == 0 { base.to_owned() } else { format!("{base}-shard-{index}") }
}

/// Merges the shards' JSON texts (`None`: a shard not created yet) into one document's text.
/// Each project must be in one shard only, and `shared_pagure_api_tokens` in the first: a
/// document that says otherwise is refused rather than read in some order. Errors name the
/// shard, never a value.
pub fn merge_secret_shards(shards: &[(String, Option<String>)]) -> Result<String, SecretsError> {
    use serde_json::{Map, Value};
    let mut projects = Map::new();
    let mut merged = Map::new();
    for (index, (id, text)) in shards.iter().enumerate() {
        let Some(text) = text else { continue };
        // Each shard is checked as a whole document first (its errors never quote it).
        SecretsDocument::parse(text).map_err(|e| SecretsError::InShard { id: id.clone(), source: Box::new(e) })?;
        let Ok(Value::Object(mut shard)) = serde_json::from_str::<Value>(text) else {
            return Err(SecretsError::Malformed(format!("secret `{id}` is not a JSON object")));
        };
        if let Some(Value::Object(entries)) = shard.remove("projects") {
            for (key, entry) in entries {
                if projects.insert(key.clone(), entry).is_some() {
                    return Err(SecretsError::Malformed(format!(
                        "project `{key}` is in more than one secret shard (again in `{id}`)"
                    )));
                }
            }
        }
        if let Some(shared) = shard.remove("shared_pagure_api_tokens") {
            if index > 0 {
                return Err(SecretsError::Malformed(format!(
                    "secret `{id}`: shared_pagure_api_tokens belong in the first secret"
                )));
            }
            merged.insert("shared_pagure_api_tokens".into(), shared);
        }
    }
    merged.insert("projects".into(), Value::Object(projects));
    Ok(Value::Object(merged).to_string())
}

/// Why the secrets document could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretsError {
    /// Reading it failed (Secrets Manager, the file): reading it again later may work.
    #[error("the secrets could not be read: {0}")]
    Unavailable(#[source] ErrorCause),
    /// The text is not a secrets document. Where and what kind of problem only: the
    /// parser's own error is not kept, as it may quote the text (a secret).
    #[error("the secrets document is malformed at {0}")]
    Malformed(String),
    /// One shard of the document (see [`merge_secret_shards`]) is malformed.
    #[error("the secrets document is malformed at secret `{id}`: {source}")]
    InShard {
        id: String,
        #[source]
        source: Box<SecretsError>,
    },
}

impl Transience for SecretsError {
    fn retry(&self) -> Retry {
        match self {
            // A malformed document is the bridge's own configuration, not the request's: the
            // request waits (the queue's or EventBridge's retries) while a person fixes it.
            SecretsError::Unavailable(_) | SecretsError::Malformed(_) => Retry::Transient,
            SecretsError::InShard { source, .. } => source.retry(),
        }
    }
}

/// Read access to the secrets document.
pub trait Secrets: Send + Sync {
    fn document(&self) -> impl Future<Output = Result<Arc<SecretsDocument>, SecretsError>> + Send;
}

/// One cache shared by several users (the worker and its flag reporter).
impl<T: Secrets> Secrets for Arc<T> {
    fn document(&self) -> impl Future<Output = Result<Arc<SecretsDocument>, SecretsError>> + Send {
        (**self).document()
    }
}

/// Where a cached secret comes from (Secrets Manager in Lambda): the raw JSON text.
pub trait SecretSource: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<String, SecretsError>> + Send;
}

/// Caches a [`SecretSource`] for `ttl`. When a refresh fails and an older copy exists, the
/// older copy keeps serving (a Secrets Manager hiccup must not reject every trigger), and
/// the next call tries again.
#[derive(Debug)]
pub struct CachedSecrets<S> {
    source: S,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<SecretsDocument>)>>,
}

impl<S: SecretSource> CachedSecrets<S> {
    pub fn new(source: S, ttl: Duration) -> Self {
        CachedSecrets { source, ttl, cached: Mutex::new(None) }
    }
}

impl<S: SecretSource> Secrets for CachedSecrets<S> {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, doc)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(doc.clone());
        }
        match self.source.fetch().await.and_then(|text| SecretsDocument::parse(&text)) {
            Ok(doc) => {
                let doc = Arc::new(doc);
                *cached = Some((Instant::now(), doc.clone()));
                Ok(doc)
            }
            Err(error) => match cached.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(%error, "secrets refresh failed; serving the previous copy");
                    Ok(stale.clone())
                }
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests;
