//! The artifact store: source archives, and the small markers the stages keep beside them
//! (claims, `.started`, `.settled`). S3 in AWS (`bridge-aws`), a folder in local mode
//! (`bridge-local`).

use std::future::Future;

use super::ErrorCause;
use crate::retry::{Retry, Transience};

/// What the source archive's object carries besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactMetadata {
    /// `(name, value)`, e.g. `("pagure-commit", "<sha>")`; S3 user metadata in AWS.
    pub entries: Vec<(String, String)>,
    /// One line for CodePipeline's revision summary (≤ 2048 characters).
    pub revision_summary: String,
}

/// Where a stored archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub key: String,
    /// The S3 object version, when the store keeps versions.
    pub version_id: Option<String>,
}

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store failed or could not be reached (I/O, S3's answer, a body that could not be
    /// read): the adapter's error is the source.
    #[error("artifact store: {0}")]
    Failed(#[source] ErrorCause),
    /// Other writers kept changing a marker (or one being created is not visible yet): the
    /// same call a little later sees it settled.
    #[error("artifact store: {0}")]
    Contended(String),
    /// A key this store will not write or read (one that could leave its folder). The
    /// bridge builds keys from checked names: this is a bug, and trying again will not help.
    #[error("artifact store: refusing key `{0}`")]
    RefusedKey(String),
    /// What this store cannot do at all.
    #[error("artifact store: {0}")]
    Unsupported(&'static str),
}

impl Transience for StoreError {
    fn retry(&self) -> Retry {
        match self {
            StoreError::Failed(_) | StoreError::Contended(_) => Retry::Transient,
            StoreError::RefusedKey(_) | StoreError::Unsupported(_) => Retry::Terminal,
        }
    }
}

/// Where source archives go (S3 in AWS, a folder locally), and small markers beside them.
pub trait ArtifactStore: Send + Sync {
    /// Stores the file at `path` under `key`, streaming it.
    fn put_archive(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &ArtifactMetadata,
    ) -> impl Future<Output = Result<StoredArtifact, StoreError>> + Send;
    /// Writes a small marker object.
    fn put_marker(&self, key: &str, content: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Reads a marker, `None` when it does not exist.
    fn marker(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Writes a marker only if `key` has none (`None`); otherwise returns the marker there.
    /// Atomic: of concurrent calls for one key, exactly one creates it.
    fn create_marker(
        &self,
        key: &str,
        content: &str,
    ) -> impl Future<Output = Result<Option<StoredMarker>, StoreError>> + Send;
    /// Overwrites a marker only if it is still the one `seen` (compare and swap); false when
    /// another writer changed it first.
    fn replace_marker(
        &self,
        key: &str,
        content: &str,
        seen: &StoredMarker,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Up to `max` objects whose keys start with `prefix`, in byte order of their keys, after
    /// `start_after` (S3's ListObjectsV2 order and `StartAfter`), with when each was last
    /// written. The report stage's sweep pages through the `.started` markers with it.
    fn list(
        &self,
        _prefix: &str,
        _start_after: Option<&str>,
        _max: usize,
    ) -> impl Future<Output = Result<Listing, StoreError>> + Send {
        async { Err(StoreError::Unsupported("this store cannot list its objects")) }
    }
    /// The `(name, value)` entries stored with the archive at `key` by `put_archive`;
    /// `None` when there is no archive there (expired, or never stored).
    fn archive_metadata(
        &self,
        _key: &str,
    ) -> impl Future<Output = Result<Option<Vec<(String, String)>>, StoreError>> + Send {
        async { Err(StoreError::Unsupported("this store cannot read archive metadata")) }
    }
}

/// One object found by [`ArtifactStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: time::OffsetDateTime,
}

/// A page of [`ArtifactStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    /// More keys follow the last one listed.
    pub truncated: bool,
}

/// A marker as read, with what identifies this version of it (the S3 ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMarker {
    pub content: String,
    pub version: String,
}
