//! Local mode's adapters of bridge-core's ports: the parts that touch this machine's files
//! or stay in this process.
//!
//! - [`InProcessQueue`] (`Queue`): a bounded channel, consumed by the work stage in the same
//!   process.
//! - [`StaticSecrets`] (`Secrets`): the secrets document, fixed or read from a file that is
//!   read again when it changes ([`SecretsFile`]).
//! - [`DirectoryStore`] (`ArtifactStore`): archives and markers in a folder.
//! - [`LocalPipeline`] (`PipelineStarter`, `PipelineLookup`): pipeline runs recorded, not
//!   started, and kept in a folder so that the flags' links outlive a restart.
//! - [`folder::write_tree`]: the source archive of a folder on disk (a checkout), the
//!   reference the git adapter's archive of a commit is compared with.

pub mod folder;
mod pipeline;
mod queue;
mod secrets;
mod store;

pub use pipeline::{LocalPipeline, LocalRun};
pub use queue::InProcessQueue;
pub use secrets::{ReadError, SECRETS_FILE_CHECK_INTERVAL, SecretsFile, StaticSecrets};
pub use store::DirectoryStore;
