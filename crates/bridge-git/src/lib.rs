//! Fetching what a build request names, with git2 (libgit2, linked statically):
//!
//! 1. the **target** project's default branch, read from the remote's `HEAD` (Fedora's
//!    dist-git uses `rawhide`, not `main`), shallowly, to read the buildspec from it: the
//!    tree being built never supplies its own build instructions;
//! 2. the tree to build: for a commit, the branch shallowly, deepened in bounded steps
//!    until the commit is there; for a pull request, `refs/pull/<id>/head` of the target
//!    repository (Pagure keeps it for same-project, fork and remote PRs);
//! 3. an archive of exactly that commit, zipped straight from the object database
//!    ([`archive_commit`]): no checkout written to disk and read back.
//!
//! The caller has checked the URLs against the project's allow-list; here redirects are
//! never followed, so a fetch cannot be sent to another host. Size and time limits abort a
//! transfer with a terminal error; network trouble and server errors are transient.

mod pack;

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use bridge_core::archive::{
    ArchiveError, ArchiveLimits, ArchiveOptions, ArchiveStats, ContentReader, Planned, Replacements, add_replacements,
    check_path_length, write_entries,
};
use bridge_core::auth::Secret;
use bridge_core::gitpath::{Refusal, check_name, is_gitmodules};
use bridge_core::model::{BuildRequest, Cause};
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, Direction, ErrorClass, FetchOptions, ObjectType, Oid, RemoteCallbacks,
    RemoteRedirect, Repository, build::CheckoutBuilder,
};

/// Limits and choices for one fetch.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Whole fetch (all transfers) must finish within this.
    pub deadline: Duration,
    /// Most bytes received over all transfers.
    pub max_bytes: u64,
    /// Depths tried in turn for a commit that is not the branch tip.
    pub deepen_steps: Vec<i32>,
    /// Buildspec paths tried in order on the default branch.
    pub buildspec_paths: Vec<String>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            deadline: Duration::from_secs(300),
            max_bytes: 2 * 1024 * 1024 * 1024,
            deepen_steps: vec![1, 16, 128, 1024],
            buildspec_paths: vec!["buildspec.yml".into(), "buildspec.yaml".into()],
        }
    }
}

/// HTTP credentials for private repositories.
#[derive(Debug, Clone)]
pub struct GitCredentials {
    pub username: String,
    pub password: Secret,
}

/// What was fetched and checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The commit checked out (for a PR, the resolved head).
    pub commit: String,
    /// The target's default branch name, without `refs/heads/`.
    pub default_branch: String,
    /// The buildspec's path and content, from the default branch.
    pub buildspec_path: String,
    pub buildspec: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no {tried} on the default branch `{branch}` of `{project}`")]
    NoBuildspec { tried: String, branch: String, project: String },
    #[error("`{path}` on the default branch `{branch}` is not a regular file")]
    BuildspecNotAFile { path: String, branch: String },
    #[error("`{path}` on the default branch `{branch}`: {problem}")]
    BuildspecInvalid { path: String, branch: String, problem: String },
    #[error("the repository has no default branch (its HEAD points nowhere)")]
    NoDefaultBranch,
    #[error("branch `{branch}` does not exist (any more) in the repository")]
    BranchGone { branch: String },
    #[error(
        "commit {sha} is not among the last {depth} commits of branch `{branch}` (force-pushed away, or on another branch)"
    )]
    CommitNotOnBranch { sha: String, branch: String, depth: i32 },
    #[error("pull request #{id} has no head in the target repository (refs/pull/{id}/head)")]
    PullRequestGone { id: u64 },
    #[error("the repository was not found or access was refused: {0}")]
    Refused(String),
    #[error("the fetch received more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the fetch took longer than {0:?}")]
    TimedOut(Duration),
    #[error("git: {0}")]
    Transient(String),
    #[error("local git storage: {0}")]
    Local(String),
}

impl FetchError {
    /// Terminal errors will not go away by retrying: the request fails for good.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, FetchError::Transient(_) | FetchError::Local(_))
    }
}

/// Sets libgit2's process-wide options. Call once from `main`, before any thread is spawned.
/// - Connect and I/O timeouts: a server that accepts and then says nothing must not hang a
///   worker; the per-transfer deadline only runs while data arrives.
/// - How much of a pack file it keeps mapped: its default, 8 GiB on 64-bit, lets a large
///   fetch map the whole pack into the process; 12 MiB is shared by the archive's threads.
/// - No second hashing of every object read: each object in the scratch repository was
///   named by hashing it as it arrived (the indexer); hashing it again when the archive
///   read it cost 1.2 s of CPU on the 200 MB benchmark, about a tenth of the work stage's.
#[allow(unsafe_code)]
pub fn init_libgit2(connect: Duration, io: Duration) -> Result<(), String> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: these write C globals without synchronisation; the contract is to call this
    // before other threads use libgit2, which is what `main` (and the test harness, once,
    // before its first fetch) does.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect)).map_err(|e| e.to_string())?;
        git2::opts::set_server_timeout_in_milliseconds(ms(io)).map_err(|e| e.to_string())?;
        git2::opts::set_mwindow_size(4 << 20).map_err(|e| e.to_string())?;
        git2::opts::set_mwindow_mapped_limit(12 << 20).map_err(|e| e.to_string())?;
    }
    git2::opts::strict_hash_verification(false);
    Ok(())
}

/// Tracks the budget shared by all transfers of one fetch.
struct Budget {
    started: Instant,
    settings: FetchSettings,
    received: Cell<u64>,
    /// Set by the progress callback when it aborts, to tell the abort from other errors.
    exceeded: Cell<Option<Exceeded>>,
    /// Set by the credentials callback when it gives up: why access is refused.
    refused: Cell<Option<&'static str>>,
}

#[derive(Debug, Clone, Copy)]
enum Exceeded {
    Bytes,
    Time,
}

impl Budget {
    fn error(&self, error: git2::Error) -> FetchError {
        if let Some(why) = self.refused.get() {
            // Asking again brings the same answer: terminal, with what to fix.
            return FetchError::Refused(why.to_owned());
        }
        match self.exceeded.get() {
            Some(Exceeded::Bytes) => FetchError::TooLarge { limit: self.settings.max_bytes },
            Some(Exceeded::Time) => FetchError::TimedOut(self.settings.deadline),
            None => classify(error, self.started.elapsed() >= self.settings.deadline, self.settings.deadline),
        }
    }
}

fn classify(error: git2::Error, late: bool, deadline: Duration) -> FetchError {
    let message = error.message().to_owned();
    if late {
        return FetchError::TimedOut(deadline);
    }
    if message.contains("timed out") {
        // libgit2's connect or I/O timeout: the host stopped answering, which another
        // attempt may not meet. The whole fetch running past its deadline is terminal.
        return FetchError::Transient(format!("the git host stopped answering: {message}"));
    }
    let refused = ["401", "403", "404"].iter().any(|code| message.contains(code));
    if error.class() == ErrorClass::Http && refused {
        FetchError::Refused(message)
    } else {
        FetchError::Transient(message)
    }
}

fn callbacks<'a>(budget: &'a Budget, credentials: Option<&'a GitCredentials>) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let base = budget.received.get();
    callbacks.transfer_progress(move |progress| {
        let received = base + progress.received_bytes() as u64;
        budget.received.set(received);
        if received > budget.settings.max_bytes {
            budget.exceeded.set(Some(Exceeded::Bytes));
            return false;
        }
        if budget.started.elapsed() > budget.settings.deadline {
            budget.exceeded.set(Some(Exceeded::Time));
            return false;
        }
        true
    });
    let tried = Cell::new(false);
    callbacks.credentials(move |_url, _user, _allowed| {
        let why = match credentials {
            // libgit2 asks again after a refusal: answer once, then give up.
            Some(c) if !tried.replace(true) => return Cred::userpass_plaintext(&c.username, c.password.expose()),
            Some(_) => {
                "the git host refused the credentials in the secret (the project's git_username and git_password)"
            }
            None => "the repository needs credentials: set git_username and git_password for the project in the secret",
        };
        budget.refused.set(Some(why));
        Err(git2::Error::from_str(why))
    });
    // Certificates are checked by libgit2's TLS as usual; this only keeps the default.
    callbacks.certificate_check(|_, _| Ok(CertificateCheckStatus::CertificatePassthrough));
    callbacks
}

fn fetch_options<'a>(budget: &'a Budget, credentials: Option<&'a GitCredentials>, depth: i32) -> FetchOptions<'a> {
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks(budget, credentials))
        .follow_redirects(RemoteRedirect::None)
        .download_tags(AutotagOption::None)
        .update_fetchhead(false)
        .depth(depth);
    options
}

/// What a remote advertises.
struct RemoteRefs {
    /// `refs/heads/<name>` that `HEAD` points at.
    default: Option<String>,
    refs: Vec<String>,
}

/// Lists the remote's refs: its default branch and the refs it advertises.
fn list_remote(
    repo: &Repository,
    url: &str,
    budget: &Budget,
    credentials: Option<&GitCredentials>,
) -> Result<RemoteRefs, FetchError> {
    let mut remote = repo.remote_anonymous(url).map_err(|e| FetchError::Local(e.to_string()))?;
    let connection = remote
        .connect_auth(Direction::Fetch, Some(callbacks(budget, credentials)), None)
        .map_err(|e| budget.error(e))?;
    let default = connection.default_branch().ok().and_then(|b| b.as_str().ok().map(str::to_owned));
    let refs = connection.list().map_err(|e| budget.error(e))?.iter().map(|head| head.name().to_owned()).collect();
    Ok(RemoteRefs { default, refs })
}

fn fetch_ref(
    repo: &Repository,
    url: &str,
    refspec: &str,
    depth: i32,
    budget: &Budget,
    credentials: Option<&GitCredentials>,
) -> Result<(), FetchError> {
    let mut remote = repo.remote_anonymous(url).map_err(|e| FetchError::Local(e.to_string()))?;
    remote.fetch(&[refspec], Some(&mut fetch_options(budget, credentials, depth)), None).map_err(|e| budget.error(e))
}

fn reference_oid(repo: &Repository, name: &str) -> Option<Oid> {
    repo.find_reference(name).ok().and_then(|r| r.peel_to_commit().ok()).map(|c| c.id())
}

/// Fetches what `request` names into a repository at `dest` (an empty directory).
/// `target_url` is the target project's clone URL (for the default branch and PR heads).
/// `check_buildspec` sees the buildspec as soon as it is read: an error there ends the fetch
/// before the (possibly large) tree is transferred.
pub fn fetch_build(
    request: &BuildRequest,
    target_url: &str,
    dest: &Path,
    settings: &FetchSettings,
    credentials: Option<&GitCredentials>,
    check_buildspec: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<Fetched, FetchError> {
    let budget = Budget {
        started: Instant::now(),
        settings: settings.clone(),
        received: Cell::new(0),
        exceeded: Cell::new(None),
        refused: Cell::new(None),
    };
    let repo = Repository::init(dest).map_err(|e| FetchError::Local(e.to_string()))?;

    // 1. The default branch of the target, and the buildspec from it.
    let target_refs = list_remote(&repo, target_url, &budget, credentials)?;
    let default_ref = target_refs.default.clone().ok_or(FetchError::NoDefaultBranch)?;
    let default_branch = default_ref.strip_prefix("refs/heads/").unwrap_or(&default_ref).to_owned();
    fetch_ref(&repo, target_url, &format!("+{default_ref}:refs/bridge/default"), 1, &budget, credentials)?;
    let default_oid = reference_oid(&repo, "refs/bridge/default").ok_or(FetchError::NoDefaultBranch)?;
    let (buildspec_path, buildspec) = read_buildspec(&repo, default_oid, &default_branch, request, settings)?;
    check_buildspec(&buildspec).map_err(|problem| FetchError::BuildspecInvalid {
        path: buildspec_path.clone(),
        branch: default_branch.clone(),
        problem,
    })?;

    // 2. The commit to build.
    let commit = match &request.cause {
        Cause::PullRequest { id } => {
            fetch_ref(&repo, target_url, &format!("+refs/pull/{id}/head:refs/bridge/build"), 1, &budget, credentials)?;
            reference_oid(&repo, "refs/bridge/build").ok_or(FetchError::PullRequestGone { id: *id })?
        }
        Cause::Commit { sha } => {
            let wanted = Oid::from_str(sha).map_err(|e| FetchError::Local(e.to_string()))?;
            let branch_ref = format!("refs/heads/{}", request.branch);
            let source_refs = if request.repo_url == target_url {
                target_refs.refs
            } else {
                list_remote(&repo, &request.repo_url, &budget, credentials)?.refs
            };
            if !source_refs.contains(&branch_ref) {
                return Err(FetchError::BranchGone { branch: request.branch.clone() });
            }
            // A push to the default branch: its tip came with the buildspec already.
            let mut found = repo.find_commit(wanted).is_ok();
            let mut depth = 0;
            for step in settings.deepen_steps.iter().filter(|_| !found) {
                depth = *step;
                fetch_ref(
                    &repo,
                    &request.repo_url,
                    &format!("+{branch_ref}:refs/bridge/build"),
                    depth,
                    &budget,
                    credentials,
                )?;
                if repo.find_commit(wanted).is_ok() {
                    found = true;
                    break;
                }
            }
            if !found {
                return Err(FetchError::CommitNotOnBranch { sha: sha.clone(), branch: request.branch.clone(), depth });
            }
            wanted
        }
    };

    Ok(Fetched { commit: commit.to_string(), default_branch, buildspec_path, buildspec })
}

fn read_buildspec(
    repo: &Repository,
    default_oid: Oid,
    branch: &str,
    request: &BuildRequest,
    settings: &FetchSettings,
) -> Result<(String, Vec<u8>), FetchError> {
    let tree = repo.find_commit(default_oid).and_then(|c| c.tree()).map_err(|e| FetchError::Local(e.to_string()))?;
    for path in &settings.buildspec_paths {
        let Ok(entry) = tree.get_path(Path::new(path)) else { continue };
        // A blob with mode 100644/100755; a link (120000) or a directory is refused.
        if entry.filemode() != 0o100644 && entry.filemode() != 0o100755 {
            return Err(FetchError::BuildspecNotAFile { path: path.clone(), branch: branch.to_owned() });
        }
        let blob = repo.find_blob(entry.id()).map_err(|e| FetchError::Local(e.to_string()))?;
        return Ok((path.clone(), blob.content().to_vec()));
    }
    Err(FetchError::NoBuildspec {
        tried: settings.buildspec_paths.join(" or "),
        branch: branch.to_owned(),
        project: request.project.target_fullname(),
    })
}

/// Checks `commit` out into the repository's working folder (for tools that want files; the
/// bridge itself archives from the object database).
pub fn checkout(repo_dir: &Path, commit: &str) -> Result<(), FetchError> {
    let local = |e: git2::Error| FetchError::Local(e.message().to_owned());
    let repo = Repository::open(repo_dir).map_err(local)?;
    let oid = Oid::from_str(commit).map_err(local)?;
    let object = repo.find_object(oid, None).map_err(local)?;
    repo.checkout_tree(&object, Some(CheckoutBuilder::new().force())).map_err(local)?;
    repo.set_head_detached(oid).map_err(local)
}

fn odb_error(e: git2::Error) -> ArchiveError {
    ArchiveError::Read { path: "the fetched repository".into(), source: std::io::Error::other(e.message().to_owned()) }
}

/// Reads blobs from a repository's object database, one handle per compressing thread.
struct BlobReader(Repository);

/// Blobs from this size are streamed out of the pack when they are stored whole there.
const STREAM_FROM: u64 = 1 << 20;

impl ContentReader for BlobReader {
    type Source = Oid;

    fn copy(&mut self, oid: &Oid, len: u64, out: &mut dyn std::io::Write) -> Result<u64, ArchiveError> {
        // `len` comes from the walk's header read; the object is not asked for it again.
        if len >= STREAM_FROM {
            let streamed = pack::blob_stream(&self.0.path().join("objects"), *oid);
            if let Some((mut content, size)) = streamed.map_err(|e| pack_error(oid, e))? {
                let copied = std::io::copy(&mut content, out).map_err(|e| pack_error(oid, e))?;
                if copied != size {
                    return Err(pack_error(oid, std::io::Error::other(format!("{copied} of {size} bytes"))));
                }
                return Ok(copied);
            }
        }
        let odb = self.0.odb().map_err(odb_error)?;
        let object = odb.read(*oid).map_err(odb_error)?;
        if object.kind() != ObjectType::Blob {
            return Err(odb_error(git2::Error::from_str("a tree entry names a non-blob")));
        }
        out.write_all(object.data())?;
        Ok(object.len() as u64)
    }
}

fn pack_error(oid: &Oid, e: std::io::Error) -> ArchiveError {
    ArchiveError::Read { path: format!("object {oid} in the fetched pack"), source: e }
}

/// Zips `commit`'s tree from the repository at `repo_dir`, the way `archive::write_tree`
/// zips a folder (same entries, modes, links and limits) but without a checkout. Blob
/// sizes come from object headers, so limits are checked before anything is inflated.
/// Submodule entries (commits) are skipped.
///
/// The tree objects are read raw and checked as git's fsck checks them
/// ([`bridge_core::gitpath`]): a name git refuses (`..`, `a/b` in one name, `.git` or a
/// look-alike), two entries of one name in a folder, or a mode git never writes refuses the
/// whole tree, naming the path, also where an injected file displaces the entry. Then the
/// injected files take their paths ([`bridge_core::archive::Replacements`]).
pub fn archive_commit<W: std::io::Write + std::io::Seek>(
    repo_dir: &Path,
    commit: &str,
    out: W,
    options: &ArchiveOptions,
    limits: ArchiveLimits,
) -> Result<ArchiveStats, ArchiveError> {
    let repo = Repository::open(repo_dir).map_err(odb_error)?;
    let odb = repo.odb().map_err(odb_error)?;
    let root = Oid::from_str(commit).and_then(|oid| repo.find_commit(oid)).map(|c| c.tree_id()).map_err(odb_error)?;
    let replacements = Replacements::new(options)?;
    let mut entries = std::collections::BTreeMap::new();
    let mut stats = ArchiveStats::default();
    // Folders still to read: (path with a trailing `/`, or empty for the top; tree id;
    // displaced by an injected file, so only checked). A stack, not recursion: a tree
    // 10,000 folders deep must not overflow the thread's stack.
    let mut pending = vec![(String::new(), root, false)];
    while let Some((folder, tree_id, displaced)) = pending.pop() {
        let unsafe_path = |name: &[u8], why: String| ArchiveError::UnsafePath {
            path: format!("{folder}{}", String::from_utf8_lossy(name)),
            why,
        };
        let object = odb.read(tree_id).map_err(odb_error)?;
        if object.kind() != ObjectType::Tree {
            return Err(unsafe_path(b"", format!("a folder whose object is a {}, not a tree", object.kind())));
        }
        let tree = parse_tree(object.data())
            .map_err(|why| unsafe_path(b"", format!("the folder's tree is corrupt: {why}")))?;
        let mut seen = std::collections::HashSet::with_capacity(tree.len());
        for entry in tree {
            let is_link = entry.mode == 0o120000;
            check_name(entry.name, is_link).map_err(|why| unsafe_path(entry.name, why.to_string()))?;
            if !seen.insert(entry.name) {
                return Err(unsafe_path(
                    entry.name,
                    "its folder holds two entries of this name, which extractors resolve differently (git fsck: duplicateEntries)"
                        .into(),
                ));
            }
            // Checked above: UTF-8, and no `/` inside it.
            let name = std::str::from_utf8(entry.name).map_err(|e| unsafe_path(entry.name, e.to_string()))?;
            let path = format!("{folder}{name}");
            check_path_length(&path)?;
            let is_dir = entry.mode == 0o040000;
            let displaced = displaced || replacements.displaces(path.split('/'), is_dir);
            // A `.gitmodules` folder also covers verify_path's rule against links below one.
            if matches!(entry.mode, 0o040000 | 0o160000) && is_gitmodules(entry.name) {
                return Err(unsafe_path(entry.name, Refusal::GitmodulesNotAFile.to_string()));
            }
            let planned = match entry.mode {
                0o040000 => {
                    pending.push((format!("{path}/"), entry.oid, displaced));
                    if displaced {
                        continue;
                    }
                    stats.directories += 1;
                    (format!("{path}/"), Planned::Directory { mode: 0o755 })
                }
                0o120000 | 0o100644 | 0o100664 | 0o100755 if displaced => {
                    // Left out, but still a tree git refuses if the entry is no blob.
                    blob_header(&odb, entry.oid, &path)?;
                    continue;
                }
                0o120000 => {
                    stats.symlinks += 1;
                    // Sized before it is read: a link's blob can be as large as any other.
                    let (len, _) = blob_header(&odb, entry.oid, &path)?;
                    if len > bridge_core::archive::MAX_LINK_TARGET_BYTES {
                        return Err(ArchiveError::LinkTooLong { path });
                    }
                    let target = link_target(&repo, entry.oid, &path)?;
                    (path, Planned::Symlink { target })
                }
                0o100644 | 0o100664 | 0o100755 => {
                    let (len, _) = blob_header(&odb, entry.oid, &path)?;
                    stats.files += 1;
                    stats.bytes += len as u64;
                    if stats.bytes > limits.max_bytes {
                        return Err(ArchiveError::TooLarge { limit: limits.max_bytes });
                    }
                    let mode = if entry.mode == 0o100755 { 0o755 } else { 0o644 };
                    (path, Planned::File { source: entry.oid, mode, len: len as u64 })
                }
                0o160000 => {
                    // A submodule (a commit of another repository), not content.
                    if !displaced {
                        stats.skipped_special += 1;
                    }
                    continue;
                }
                mode => {
                    return Err(ArchiveError::UnsafePath {
                        path,
                        why: format!("its mode {mode:o} is none that git writes (git fsck: badFilemode)"),
                    });
                }
            };
            entries.insert(planned.0, planned.1);
            if entries.len() as u64 > limits.max_entries {
                return Err(ArchiveError::TooManyEntries { limit: limits.max_entries });
            }
        }
    }
    add_replacements(&mut entries, &mut stats, options);
    let open = || Repository::open(repo_dir).map(BlobReader).map_err(odb_error);
    let (_, copied) = write_entries(out, entries.into_iter().collect(), options, limits, open)?;
    stats.bytes = copied;
    Ok(stats)
}

/// A blob's size and kind from its header; an entry that names anything but a blob is
/// refused with its path.
fn blob_header(odb: &git2::Odb<'_>, oid: Oid, path: &str) -> Result<(usize, ObjectType), ArchiveError> {
    let (len, kind) = odb.read_header(oid).map_err(odb_error)?;
    if kind != ObjectType::Blob {
        return Err(ArchiveError::UnsafePath {
            path: path.to_owned(),
            why: format!("a file or link whose object is a {kind}, not a blob"),
        });
    }
    Ok((len, kind))
}

/// One entry of a raw tree object.
#[derive(Debug)]
struct RawEntry<'a> {
    mode: u32,
    name: &'a [u8],
    oid: Oid,
}

/// Parses a tree object as git does (tree-walk.c `decode_tree_entry`): entries of
/// `<octal mode> <name>\0<20-byte id>`. Names are returned as they are, to be checked.
/// libgit2's own parser is not used: it hands out modes normalised (`100600` reads as
/// `100644`) and walks recursively.
fn parse_tree(data: &[u8]) -> Result<Vec<RawEntry<'_>>, &'static str> {
    const ID: usize = 20;
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or("an entry has no mode")?;
        if space == 0 {
            return Err("an entry has an empty mode");
        }
        let mut mode = 0u32;
        for digit in &rest[..space] {
            if !(b'0'..=b'7').contains(digit) {
                return Err("an entry's mode is not octal");
            }
            mode =
                mode.checked_mul(8).and_then(|m| m.checked_add(u32::from(digit - b'0'))).ok_or("a mode overflows")?;
        }
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|b| *b == 0).ok_or("an entry's name is not terminated")?;
        let name = &rest[..nul];
        rest = &rest[nul + 1..];
        let id = rest.get(..ID).ok_or("an entry's object id is cut short")?;
        let oid = Oid::from_bytes(id).map_err(|_| "an entry's object id is invalid")?;
        rest = &rest[ID..];
        entries.push(RawEntry { mode, name, oid });
    }
    Ok(entries)
}

/// A symlink's target: its blob's content, which must be a UTF-8 path.
/// An empty target, or one with a NUL, is refused: no system can make such a link (git's
/// checkout fails on it), and extractors write it as a file instead (Info-ZIP `unzip`).
fn link_target(repo: &Repository, oid: Oid, path: &str) -> Result<String, ArchiveError> {
    let blob = repo.find_blob(oid).map_err(odb_error)?;
    if blob.content().is_empty() || blob.content().contains(&0) {
        return Err(ArchiveError::UnsafePath {
            path: path.to_owned(),
            why: "a symbolic link whose target is empty or holds a NUL, which no system can create".into(),
        });
    }
    String::from_utf8(blob.content().to_vec())
        .map_err(|e| ArchiveError::NonUtf8Name { lossy: String::from_utf8_lossy(e.as_bytes()).into_owned() })
}

#[cfg(test)]
mod tests;
