//! The work stage's source port over git2: each request gets a scratch folder, the fetch
//! and the archive run on the blocking pool, and the archive is a file in the scratch
//! folder for the store to upload.

use std::path::{Path, PathBuf};

use bridge_core::archive::ArchiveError;
use bridge_core::model::BuildRequest;
use bridge_core::ports::ErrorCause;
use bridge_core::work::{ArchiveOrder, CUT_SHORT, FetchError, FetchOrder, Fetched, SourceArchive, SourceFetcher};

use crate::{archive_commit, fetch_build};

/// Fetches with git2 into a scratch folder per request, `<scratch_dir>/pcb-work-<request id>`
/// (`/tmp` in Lambda), removed when the worker is done with it.
#[derive(Debug, Clone)]
pub struct GitFetcher {
    scratch_dir: PathBuf,
}

impl GitFetcher {
    pub fn new(scratch_dir: impl Into<PathBuf>) -> Self {
        GitFetcher { scratch_dir: scratch_dir.into() }
    }
}

impl Default for GitFetcher {
    /// Scratch folders in the system's temporary folder.
    fn default() -> Self {
        GitFetcher::new(std::env::temp_dir())
    }
}

impl SourceFetcher for GitFetcher {
    type Workspace = Scratch;

    async fn fetch(&self, request: &BuildRequest, order: FetchOrder<'_>) -> Result<(Scratch, Fetched), FetchError> {
        let scratch = Scratch::new(&self.scratch_dir, &request.request_id)?;
        let (request, target_url, dest) = (request.clone(), order.target_url.to_owned(), scratch.repo());
        let (settings, credentials, check) =
            (order.settings.clone(), order.credentials.cloned(), order.check_buildspec);
        let fetched = tokio::task::spawn_blocking(move || {
            fetch_build(&request, &target_url, &dest, &settings, credentials.as_ref(), check)
        })
        .await
        .map_err(|e| FetchError::Task(ErrorCause::new(e)))??;
        Ok((scratch, fetched))
    }

    async fn write_archive(&self, workspace: &Scratch, order: ArchiveOrder) -> Result<SourceArchive, ArchiveError> {
        let (repo_dir, zip_path) = (workspace.repo(), workspace.zip());
        let zip_file = zip_path.clone();
        let stats = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&zip_file).map_err(ArchiveError::Io)?;
            // Stops the archive (a transient I/O error) when the time runs out, rather than
            // writing on after the request was cut short.
            let out = Deadline {
                inner: std::io::BufWriter::new(file),
                until: order.until.map(tokio::time::Instant::into_std),
            };
            archive_commit(&repo_dir, &order.commit, out, &order.options, order.limits)
        })
        .await
        .map_err(|e| ArchiveError::Io(std::io::Error::other(format!("archive task: {e}"))))??;
        Ok(SourceArchive { path: zip_path, stats })
    }
}

/// A per-request scratch folder, removed when dropped (also on every error path).
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path, request_id: &str) -> Result<Self, FetchError> {
        let dir = parent.join(format!("pcb-work-{request_id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("repo")).map_err(|e| FetchError::Scratch(e.into()))?;
        Ok(Scratch(dir))
    }

    /// The fetched repository (archives come from its objects; nothing is checked out).
    pub fn repo(&self) -> PathBuf {
        self.0.join("repo")
    }

    fn zip(&self) -> PathBuf {
        self.0.join("source.zip")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A writer that fails (`TimedOut`) once `until` has passed.
struct Deadline<W> {
    inner: W,
    until: Option<std::time::Instant>,
}

impl<W> Deadline<W> {
    fn check(&self) -> std::io::Result<()> {
        match self.until {
            Some(until) if std::time::Instant::now() >= until => {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, CUT_SHORT))
            }
            _ => Ok(()),
        }
    }
}

impl<W: std::io::Write> std::io::Write for Deadline<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: std::io::Seek> std::io::Seek for Deadline<W> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}
