//! The ports the stages depend on, one file each: what a port asks for (its trait), the
//! data it carries, its error, and the helpers that need no outside system.
//!
//! - [`queue`]: where accepted build requests go ([`Queue`]).
//! - [`secrets`]: the secrets document ([`Secrets`]), its shards, and a TTL cache over a
//!   [`SecretSource`].
//! - [`store`]: source archives and markers ([`ArtifactStore`]).
//! - [`pipeline`]: starting runs ([`PipelineStarter`]) and reading them back
//!   ([`PipelineLookup`]), with [`InMemoryPipelines`] for tests.
//!
//! Adapters live elsewhere: AWS's in `bridge-aws`, local mode's (a folder, a file, an
//! in-process channel) in `bridge-local`. Every port error keeps its cause as its `source`
//! ([`ErrorCause`]) and says whether trying again may help ([`crate::retry::Transience`]).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

pub mod pipeline;
pub mod queue;
pub mod secrets;
pub mod store;

pub use pipeline::*;
pub use queue::*;
pub use secrets::*;
pub use store::*;

/// What a port's error keeps of its cause: the adapter's own error (an `io::Error`, a join
/// error, ...) when it has one, else the outside system's words (an SDK error's text).
/// Shown as the cause shows itself; its sources are the cause's. Cheap to clone, so errors
/// that carry one can be cloned too.
#[derive(Clone)]
pub struct ErrorCause(Arc<dyn Error + Send + Sync>);

impl ErrorCause {
    /// Keeps `error` itself.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        ErrorCause(Arc::new(error))
    }

    /// The error kept, e.g. to downcast it.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for ErrorCause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// An outside system's message, when it gave nothing more.
impl From<String> for ErrorCause {
    fn from(text: String) -> Self {
        ErrorCause(Arc::from(Box::<dyn Error + Send + Sync>::from(text)))
    }
}

impl From<&str> for ErrorCause {
    fn from(text: &str) -> Self {
        ErrorCause::from(text.to_owned())
    }
}

impl From<std::io::Error> for ErrorCause {
    fn from(error: std::io::Error) -> Self {
        ErrorCause::new(error)
    }
}

#[cfg(test)]
mod tests;
