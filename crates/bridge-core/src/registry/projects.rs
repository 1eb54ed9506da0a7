//! Where the registry comes from at run time: the [`RegistrySource`] the stages read (an S3
//! object, a file), the [`RegistryStore`] the CLI edits with conditional writes, and the
//! [`Projects`] handle that keeps a compiled registry for a TTL, one refresh at a time,
//! holding on to the last good one when a read or an edit goes wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Deployment, REGISTRY_READ_TIMEOUT, Registry, RegistryDocument, RegistryError};
use crate::config::ProjectConfig;

/// Where the registry document is read from: an S3 object in AWS, a file in local mode.
/// `None` means there is no document yet (an empty registry), not an error.
pub trait RegistrySource: Send + Sync + fmt::Debug {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Option<String>, RegistryError>> + Send + '_>>;
}

/// A stored document and the version it was read at, for a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistry {
    pub text: String,
    pub version: String,
}

/// Read and conditional write of the registry document (`pagure-ci-bridge projects`).
pub trait RegistryStore: Send + Sync {
    fn read(&self) -> impl Future<Output = Result<Option<StoredRegistry>, RegistryError>> + Send;
    /// Stores `text` if the document is still at `expected` (`None`: still absent); a lost
    /// race is [`RegistryError::Conflict`], so two admins' edits never overwrite each other.
    fn write(&self, text: &str, expected: Option<&str>) -> impl Future<Output = Result<(), RegistryError>> + Send;
    /// Where it is, for messages (`s3://bucket/key`, a path).
    fn describe(&self) -> String;
}

/// The projects a stage routes: fixed at start (inline configuration only) or read from a
/// [`RegistrySource`] and kept for a TTL, as the secret is.
#[derive(Clone)]
pub struct Projects {
    inner: Arc<ProjectsInner>,
}

enum ProjectsInner {
    Fixed(Arc<Registry>),
    Loaded(Box<Loaded>),
}

struct Loaded {
    source: Box<dyn RegistrySource>,
    ttl: Duration,
    inline: BTreeMap<String, ProjectConfig>,
    deployment: Deployment,
    state: tokio::sync::Mutex<Option<(Instant, Arc<Registry>)>>,
}

impl fmt::Debug for Projects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            ProjectsInner::Fixed(r) => write!(f, "Projects::Fixed({} rules)", r.len()),
            ProjectsInner::Loaded(l) => write!(f, "Projects::Loaded({:?}, ttl {:?})", l.source, l.ttl),
        }
    }
}

impl Projects {
    pub fn fixed(registry: Registry) -> Self {
        Projects { inner: Arc::new(ProjectsInner::Fixed(Arc::new(registry))) }
    }

    /// Inline projects plus the document `source` holds, read again after `ttl`.
    pub fn loaded(
        source: impl RegistrySource + 'static,
        ttl: Duration,
        inline: BTreeMap<String, ProjectConfig>,
        deployment: Deployment,
    ) -> Self {
        let loaded = Loaded { source: Box::new(source), ttl, inline, deployment, state: tokio::sync::Mutex::new(None) };
        Projects { inner: Arc::new(ProjectsInner::Loaded(Box::new(loaded))) }
    }

    /// The registry as it is now. A read that fails after a good one keeps the good one for
    /// another TTL (logged): a broken edit or an S3 hiccup must not stop builds.
    pub async fn snapshot(&self) -> Result<Arc<Registry>, RegistryError> {
        let loaded = match &*self.inner {
            ProjectsInner::Fixed(registry) => return Ok(registry.clone()),
            ProjectsInner::Loaded(loaded) => loaded,
        };
        // Held across the read: one refresh at a time, the others wait for its result.
        let mut state = loaded.state.lock().await;
        if let Some((read_at, registry)) = state.as_ref()
            && read_at.elapsed() < loaded.ttl
        {
            return Ok(registry.clone());
        }
        let fresh = async {
            // Requests wait on this read: bounded, so a hung read costs a refresh, not them all.
            let text = tokio::time::timeout(REGISTRY_READ_TIMEOUT, loaded.source.fetch()).await.map_err(|_| {
                RegistryError::Unavailable(format!("no answer within {REGISTRY_READ_TIMEOUT:?}").into())
            })??;
            let document = text.as_deref().map(RegistryDocument::parse).transpose()?;
            Registry::compile(&loaded.inline, document.as_ref(), &loaded.deployment)
        }
        .await;
        match (fresh, state.as_mut()) {
            (Ok(registry), _) => {
                let registry = Arc::new(registry);
                *state = Some((Instant::now(), registry.clone()));
                Ok(registry)
            }
            (Err(error), Some((read_at, registry))) => {
                tracing::error!(%error, "project registry not refreshed: the last good one stays in use");
                *read_at = Instant::now();
                Ok(registry.clone())
            }
            (Err(error), None) => Err(error),
        }
    }

    /// An inline project (`[projects.<key>]`, `PCB_PROJECTS`), without reading the registry.
    pub fn inline(&self, key: &str) -> Option<&ProjectConfig> {
        match &*self.inner {
            ProjectsInner::Fixed(registry) => registry.exact.get(key).map(|(p, _)| &**p),
            ProjectsInner::Loaded(loaded) => loaded.inline.get(key),
        }
    }

    /// The inline projects' keys.
    pub fn inline_keys(&self) -> Vec<&str> {
        match &*self.inner {
            ProjectsInner::Fixed(registry) => registry.exact_keys().collect(),
            ProjectsInner::Loaded(loaded) => loaded.inline.keys().map(String::as_str).collect(),
        }
    }

    /// The project `key` names, `None` when no rule matches.
    pub async fn get(&self, key: &str) -> Result<Option<Arc<ProjectConfig>>, RegistryError> {
        Ok(self.snapshot().await?.get(key))
    }
}

/// `projects["key"]`: an inline project; panics when there is none (tests, fixed setups).
impl std::ops::Index<&str> for Projects {
    type Output = ProjectConfig;

    fn index(&self, key: &str) -> &ProjectConfig {
        self.inline(key).unwrap_or_else(|| panic!("no inline project `{key}`"))
    }
}

impl std::ops::Index<&String> for Projects {
    type Output = ProjectConfig;

    fn index(&self, key: &String) -> &ProjectConfig {
        &self[key.as_str()]
    }
}
