//! Local mode's artifact store: a folder.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bridge_core::ports::{
    ArtifactMetadata, ArtifactStore, ErrorCause, ListedObject, Listing, StoreError, StoredArtifact, StoredMarker,
};

/// Stores archives in a local folder, `<root>/<key>`, with the metadata as `<key>.json`.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: PathBuf,
    /// Serialises compare-and-swap of markers. Local mode is one process, so a lock in it
    /// is enough; creating is atomic through the file system on its own.
    swap: Arc<Mutex<()>>,
}

impl DirectoryStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectoryStore { root: root.into(), swap: Default::default() }
    }

    /// Writes `content` beside `target` and moves it into place in one step, so that a
    /// reader never sees half a marker.
    fn write_atomically(target: &Path, content: &str) -> Result<PathBuf, StoreError> {
        let staging = target.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&staging, content).map_err(failed)?;
        Ok(staging)
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        // Keys are built by the bridge from checked names; refuse anything that could leave
        // the folder all the same.
        if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(StoreError::RefusedKey(key.to_owned()));
        }
        Ok(self.root.join(key))
    }

    /// The path of `key`, with its folder created.
    fn writable(&self, key: &str) -> Result<PathBuf, StoreError> {
        let target = self.path(key)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        Ok(target)
    }
}

fn failed(e: io::Error) -> StoreError {
    StoreError::Failed(e.into())
}

impl ArtifactStore for DirectoryStore {
    async fn put_archive(
        &self,
        key: &str,
        path: &Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        let target = self.writable(key)?;
        std::fs::copy(path, &target).map_err(failed)?;
        let meta: serde_json::Map<String, serde_json::Value> =
            metadata.entries.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        let json = serde_json::json!({"metadata": meta, "revision_summary": metadata.revision_summary});
        std::fs::write(target.with_extension("zip.json"), json.to_string()).map_err(failed)?;
        Ok(StoredArtifact { key: key.to_owned(), version_id: None })
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        let target = self.writable(key)?;
        let staging = Self::write_atomically(&target, content)?;
        std::fs::rename(&staging, &target).map_err(failed)
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        match std::fs::read_to_string(self.path(key)?) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        // Most calls for an existing claim are duplicates: one read answers them, before any
        // folder is made.
        if let Ok(existing) = std::fs::read_to_string(self.path(key)?) {
            return Ok(Some(StoredMarker { version: existing.clone(), content: existing }));
        }
        let target = self.writable(key)?;
        let staging = Self::write_atomically(&target, content)?;
        // A hard link fails if the name exists: the file system decides who created it.
        let linked = std::fs::hard_link(&staging, &target);
        let _ = std::fs::remove_file(&staging);
        match linked {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let content = std::fs::read_to_string(&target).map_err(failed)?;
                Ok(Some(StoredMarker { version: content.clone(), content }))
            }
            Err(e) => Err(failed(e)),
        }
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        let target = self.writable(key)?;
        let _guard = self.swap.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A marker's version here is its content: claims carry a request id and a time.
        if std::fs::read_to_string(&target).ok().as_deref() != Some(seen.version.as_str()) {
            return Ok(false);
        }
        let staging = Self::write_atomically(&target, content)?;
        std::fs::rename(&staging, &target).map_err(failed)?;
        Ok(true)
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, max: usize) -> Result<Listing, StoreError> {
        // Walk the folder the prefix names (its part up to the last `/`), then keep the keys
        // S3 would list: everything but the metadata files and half-written markers.
        let folder = prefix.rsplit_once('/').map_or("", |(folder, _)| folder);
        let mut found = Vec::new();
        let mut pending = vec![if folder.is_empty() { self.root.clone() } else { self.path(folder)? }];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failed(e)),
            };
            for entry in entries {
                let entry = entry.map_err(failed)?;
                let meta = entry.metadata().map_err(failed)?;
                if meta.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                let Ok(relative) = entry.path().strip_prefix(&self.root).map(|p| p.to_string_lossy().into_owned())
                else {
                    continue;
                };
                let key = relative.replace(std::path::MAIN_SEPARATOR, "/");
                let internal =
                    key.ends_with(".zip.json") || key.rsplit('/').next().is_some_and(|n| n.contains(".tmp-"));
                if internal || !key.starts_with(prefix) || start_after.is_some_and(|after| key.as_str() <= after) {
                    continue;
                }
                let modified = meta.modified().map_err(failed)?;
                found.push(ListedObject { key, last_modified: time::OffsetDateTime::from(modified) });
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        let truncated = found.len() > max;
        found.truncate(max);
        Ok(Listing { objects: found, truncated })
    }

    async fn archive_metadata(&self, key: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let target = self.path(key)?;
        let mut sidecar = target.into_os_string();
        sidecar.push(".json");
        let text = match std::fs::read_to_string(&sidecar) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StoreError::Failed(ErrorCause::new(e)))?;
        let entries = json
            .get("metadata")
            .and_then(|m| m.as_object())
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        Ok(Some(entries))
    }
}

#[cfg(test)]
mod tests;
