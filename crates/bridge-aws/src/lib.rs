//! AWS adapters of bridge-core's ports: [`SqsQueue`] for `Queue`, [`SecretsManagerSource`]
//! (wrapped in core's `CachedSecrets`) for `Secrets`, [`S3Store`] for `ArtifactStore`,
//! [`CodePipelineStarter`] for `PipelineStarter`, [`CodePipelineLookup`] for `PipelineLookup`. Clients are built once by the caller and
//! passed in.

mod codepipeline;
mod registry;
mod s3;
mod secrets;
mod sqs;

pub use codepipeline::*;
pub use registry::{S3Registry, SecretShard, SecretsManagerEditor};
pub use s3::*;
pub use secrets::*;
pub use sqs::*;

use aws_sdk_s3::error::DisplayErrorContext;

/// An SDK error with its whole chain of causes (every SDK crate re-exports the same
/// `DisplayErrorContext`).
fn error_text(error: impl std::error::Error) -> String {
    DisplayErrorContext(error).to_string()
}

#[cfg(test)]
mod tests;
