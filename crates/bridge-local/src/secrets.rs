//! Local mode's secrets: a document fixed at start, or a file read again when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bridge_core::ports::{ErrorCause, Secrets, SecretsDocument, SecretsError};

/// Local mode's secrets: fixed at start ([`StaticSecrets::new`]), or read from a file and
/// read again when it changes ([`StaticSecrets::from_file`], a [`SecretsFile`]).
#[derive(Debug, Clone)]
pub struct StaticSecrets(Arc<LocalSecrets>);

#[derive(Debug)]
enum LocalSecrets {
    Fixed(Arc<SecretsDocument>),
    File(SecretsFile),
}

impl StaticSecrets {
    pub fn new(document: SecretsDocument) -> Self {
        StaticSecrets(Arc::new(LocalSecrets::Fixed(Arc::new(document))))
    }

    /// Reads a JSON file with the secrets document's layout, and reads it again when its
    /// text changes (checked at most every [`SECRETS_FILE_CHECK_INTERVAL`]): see
    /// [`SecretsFile`].
    pub fn from_file(path: &Path) -> Result<Self, SecretsError> {
        Self::from_file_checked_every(path, SECRETS_FILE_CHECK_INTERVAL)
    }

    /// [`StaticSecrets::from_file`], looking at the file at most every `check_every`.
    pub fn from_file_checked_every(path: &Path, check_every: Duration) -> Result<Self, SecretsError> {
        Ok(StaticSecrets(Arc::new(LocalSecrets::File(SecretsFile::open_checked_every(path, check_every)?))))
    }
}

impl Secrets for StaticSecrets {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        Ok(match &*self.0 {
            LocalSecrets::Fixed(document) => document.clone(),
            LocalSecrets::File(file) => file.current(),
        })
    }
}

/// How often, at most, local mode looks at its secrets file again.
pub const SECRETS_FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A secrets file, looked at again at most every `check_every` (when secrets are asked for).
/// A changed file that cannot be read or parsed is logged (where and what kind of error,
/// never the text) and the last good document keeps serving.
#[derive(Debug)]
pub struct SecretsFile {
    path: PathBuf,
    check_every: Duration,
    state: Mutex<FileState>,
}

#[derive(Debug)]
struct FileState {
    checked: Instant,
    /// SHA-256 of the text last read, used or refused: unchanged text is not parsed again,
    /// and a malformed text is reported once.
    seen: [u8; 32],
    /// The last reading failed (reported once, until the file can be read again).
    unreadable: bool,
    /// The last good document: what is served until a new good one is read.
    document: Arc<SecretsDocument>,
}

/// A secrets file that could not be read: the cause of [`SecretsError::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl SecretsFile {
    /// Reads the file, which must hold a good document now.
    pub fn open(path: &Path) -> Result<Self, SecretsError> {
        Self::open_checked_every(path, SECRETS_FILE_CHECK_INTERVAL)
    }

    /// [`SecretsFile::open`], looking at the file at most every `check_every`.
    pub fn open_checked_every(path: &Path, check_every: Duration) -> Result<Self, SecretsError> {
        let bytes = read_secrets_file(path)?;
        let document = parse_secrets_bytes(&bytes)?;
        Ok(SecretsFile {
            path: path.to_owned(),
            check_every,
            state: Mutex::new(FileState {
                checked: Instant::now(),
                seen: digest(&bytes),
                unreadable: false,
                document: Arc::new(document),
            }),
        })
    }

    fn current(&self) -> Arc<SecretsDocument> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() < self.check_every {
            return state.document.clone();
        }
        state.checked = Instant::now();
        let path = self.path.display().to_string();
        let bytes = match read_secrets_file(&self.path) {
            Ok(bytes) => bytes,
            Err(error) => {
                if !state.unreadable {
                    state.unreadable = true;
                    tracing::warn!(%path, %error, "secrets file unreadable; keeping the secrets last read");
                }
                return state.document.clone();
            }
        };
        state.unreadable = false;
        let digest = digest(&bytes);
        if digest == state.seen {
            return state.document.clone();
        }
        state.seen = digest;
        match parse_secrets_bytes(&bytes) {
            Ok(document) => {
                tracing::info!(%path, projects = document.projects.len(), "secrets file changed; reloaded");
                state.document = Arc::new(document);
            }
            Err(error) => {
                tracing::warn!(%path, %error, "secrets file changed but is not usable; keeping the secrets last read")
            }
        }
        state.document.clone()
    }
}

impl Secrets for SecretsFile {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        Ok(self.current())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(bytes).into()
}

fn read_secrets_file(path: &Path) -> Result<Vec<u8>, SecretsError> {
    std::fs::read(path)
        .map_err(|source| SecretsError::Unavailable(ErrorCause::new(ReadError { path: path.to_owned(), source })))
}

fn parse_secrets_bytes(bytes: &[u8]) -> Result<SecretsDocument, SecretsError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| SecretsError::Malformed(format!("byte {}: the file is not UTF-8", e.valid_up_to())))?;
    SecretsDocument::parse(text)
}

#[cfg(test)]
mod tests {
    use bridge_core::auth::Secret;
    use bridge_core::retry::Transience;

    use super::*;

    /// The secrets file read again on change: a new good text replaces the document, a
    /// malformed or missing one keeps the last good document.
    #[tokio::test]
    async fn secrets_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("secrets.json");
        let doc = |token: &str| format!(r#"{{"projects": {{"p": {{"trigger_token": "{token}"}}}}}}"#);
        let token = |d: &SecretsDocument| d.project("p").and_then(|p| p.trigger_token.clone());
        std::fs::write(&path, doc("first")).expect("write");
        let secrets = StaticSecrets::from_file_checked_every(&path, Duration::ZERO).expect("read");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("first")));
        std::fs::write(&path, doc("second")).expect("write");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("second")));
        std::fs::write(&path, r#"{"projects": {"p": {"trigger_token": "third""#).expect("write");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("second")), "malformed: kept");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("second")), "missing: kept");
        std::fs::write(&path, doc("fourth")).expect("write");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("fourth")));
        // Within the check interval the file is not looked at.
        let slow = StaticSecrets::from_file_checked_every(&path, Duration::from_secs(3600)).expect("read");
        std::fs::write(&path, doc("fifth")).expect("write");
        assert_eq!(token(&slow.document().await.expect("doc")), Some(Secret::new("fourth")));
    }

    #[test]
    fn a_missing_file_is_unavailable_with_the_io_error_as_its_cause() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("absent.json");
        let error = SecretsFile::open(&path).expect_err("no file");
        assert!(error.is_transient(), "{error}");
        let text = error.to_string();
        assert!(text.starts_with("the secrets could not be read: ") && text.contains("absent.json"), "{text}");
        let SecretsError::Unavailable(cause) = &error else { panic!("{error:?}") };
        let read = cause.error().downcast_ref::<ReadError>().expect("the file's error");
        assert_eq!((read.path.as_path(), read.source.kind()), (path.as_path(), std::io::ErrorKind::NotFound));
        std::fs::write(&path, [0xff, b'{']).expect("write");
        let error = SecretsFile::open(&path).expect_err("not UTF-8");
        assert_eq!(error.to_string(), "the secrets document is malformed at byte 0: the file is not UTF-8");
    }
}
