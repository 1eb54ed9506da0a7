//! Fetching what a build request names: the target's default branch and the buildspec
//! from it, then the commit (shallow, deepened in bounded steps) or the pull request's head,
//! within a byte and time budget shared by all transfers; redirects are never followed.

use std::cell::Cell;
use std::fmt;
use std::path::Path;
use std::time::Instant;

use bridge_core::model::{BuildRequest, Cause};
use bridge_core::ports::ErrorCause;
use bridge_core::work::{BuildspecProblem, FetchError, FetchSettings, Fetched, GitCredentials};
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, Direction, ErrorClass, FetchOptions, Oid, RemoteCallbacks,
    RemoteRedirect, Repository, build::CheckoutBuilder,
};

/// A libgit2 error shown by its message alone, as the bridge's errors quote it (git2's own
/// `Display` appends the error's class and code, which `Debug` keeps).
#[derive(Debug)]
pub struct GitMessage(pub git2::Error);

impl fmt::Display for GitMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.message())
    }
}

impl std::error::Error for GitMessage {}

/// The scratch repository could not be made or read.
fn local(error: git2::Error) -> FetchError {
    FetchError::Local(ErrorCause::new(error))
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

fn classify(error: git2::Error, late: bool, deadline: std::time::Duration) -> FetchError {
    if late {
        return FetchError::TimedOut(deadline);
    }
    let message = error.message();
    if message.contains("timed out") {
        // libgit2's connect or I/O timeout: the host stopped answering, which another
        // attempt may not meet. The whole fetch running past its deadline is terminal.
        return FetchError::Stalled(ErrorCause::new(GitMessage(error)));
    }
    let refused = ["401", "403", "404"].iter().any(|code| message.contains(code));
    if error.class() == ErrorClass::Http && refused {
        FetchError::Refused(message.to_owned())
    } else {
        FetchError::Transient(ErrorCause::new(GitMessage(error)))
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
    let mut remote = repo.remote_anonymous(url).map_err(local)?;
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
    let mut remote = repo.remote_anonymous(url).map_err(local)?;
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
    check_buildspec: impl FnOnce(&[u8]) -> Result<(), BuildspecProblem>,
) -> Result<Fetched, FetchError> {
    let budget = Budget {
        started: Instant::now(),
        settings: settings.clone(),
        received: Cell::new(0),
        exceeded: Cell::new(None),
        refused: Cell::new(None),
    };
    let repo = Repository::init(dest).map_err(local)?;

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
            let wanted = Oid::from_str(sha).map_err(local)?;
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
    let tree = repo.find_commit(default_oid).and_then(|c| c.tree()).map_err(local)?;
    for path in &settings.buildspec_paths {
        let Ok(entry) = tree.get_path(Path::new(path)) else { continue };
        // A blob with mode 100644/100755; a link (120000) or a directory is refused.
        if entry.filemode() != 0o100644 && entry.filemode() != 0o100755 {
            return Err(FetchError::BuildspecNotAFile { path: path.clone(), branch: branch.to_owned() });
        }
        let blob = repo.find_blob(entry.id()).map_err(local)?;
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
    let local = |e: git2::Error| FetchError::Local(ErrorCause::new(GitMessage(e)));
    let repo = Repository::open(repo_dir).map_err(local)?;
    let oid = Oid::from_str(commit).map_err(local)?;
    let object = repo.find_object(oid, None).map_err(local)?;
    repo.checkout_tree(&object, Some(CheckoutBuilder::new().force())).map_err(local)?;
    repo.set_head_detached(oid).map_err(local)
}
