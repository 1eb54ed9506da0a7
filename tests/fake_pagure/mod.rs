//! A fake Pagure for tests, built from `CONTRACT.md` sections (a) and (e): the commit and
//! pull-request flag endpoints (POST and GET) for plain, namespaced and forked projects,
//! a pull request's own JSON (`status`, `user`, `branch`, `commit_stop`, `repo_from`,
//! `remote_git`), and `hascommit`
//! (project committers and per-branch collaborators), a project's own JSON
//! (`GET /api/0/[fork/<user>/][<namespace>/]<repo>`) and `POST /api/0/-/whoami`,
//! with Pagure's token header parsing, ACLs, project-scoped tokens, form validation, uid
//! create/update semantics and its exact error bodies. Faults can be scripted per request.
//!
//! This module holds the fake's handle (what tests set up and read back) and its state;
//! `api` answers the requests, `wire` holds Pagure's JSON bodies, error answers, API paths,
//! URL validator and form reading.

mod api;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Where a pull request's head comes from (its JSON's `repo_from` and `remote_git`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSource {
    /// A branch of the target project itself (`repo_from` is the project).
    Project,
    /// A branch of `<user>`'s fork (`repo_from.fullname` is `forks/<user>/[ns/]name`).
    Fork(String),
    /// A remote pull request: `repo_from` null, the head pulled from this git URL.
    Remote(String),
}

/// A token Pagure knows.
#[derive(Debug, Clone)]
pub struct Token {
    pub acls: Vec<&'static str>,
    /// A project token works on this project only (API path form: `demo`, `ns/demo`).
    pub project: Option<String>,
    pub expired: bool,
}

/// One stored flag, as Pagure's `commit_flags` table has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFlag {
    /// The project the flag belongs to (API path form).
    pub project: String,
    pub commit: String,
    pub uid: String,
    pub username: String,
    pub comment: String,
    pub url: String,
    pub status: String,
    pub percent: Option<String>,
    /// Order of the last write (Pagure orders by `date_updated`).
    pub updated: u64,
}

/// A scripted answer for the next flag request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body, store nothing.
    Status(u16, &'static str),
    /// Wait this long before handling the request normally (a client timeout shorter than
    /// this sees a timeout).
    Delay(Duration),
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    /// The query string, still encoded.
    pub query: String,
}

#[derive(Debug, Default)]
struct State {
    /// Projects, API path form (`demo`, `ns/demo`, `fork/bob/demo`).
    projects: Vec<String>,
    tokens: HashMap<String, Token>,
    /// Token → the user it belongs to (`whoami`); [`DEFAULT_TOKEN_USER`] when absent.
    token_users: HashMap<String, String>,
    /// (target project, PR id) → current head (`commit_stop`).
    pulls: HashMap<(String, u64), String>,
    /// (target project, PR id) → `Open` (when absent), `Merged` or `Closed`.
    pull_status: HashMap<(String, u64), String>,
    /// (target project, PR id) → (author, target branch); [`DEFAULT_AUTHOR`] and
    /// [`DEFAULT_BRANCH`] when absent.
    pull_author: HashMap<(String, u64), (String, String)>,
    /// (target project, PR id) → where its head comes from; [`PullSource::Project`] when
    /// absent.
    pull_source: HashMap<(String, u64), PullSource>,
    /// (project, user) → the branches they may commit to; `None`: every branch (a committer
    /// or admin of the project), else a collaborator's branch list.
    committers: HashMap<(String, String), Option<Vec<String>>>,
    flags: Vec<StoredFlag>,
    faults: VecDeque<Fault>,
    seen: Vec<Seen>,
    clock: u64,
}

#[derive(Debug)]
pub struct FakePagure {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakePagure {
    pub async fn start() -> FakePagure {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => accepted.expect("accept"),
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let handler = service_fn(move |request| api::answer(state.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
                });
            }
        });
        FakePagure { url, state, stop: Some(stop) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake pagure state"))
    }

    pub fn add_project(&self, path: &str) {
        self.with(|s| s.projects.push(path.to_owned()));
    }

    pub fn add_token(&self, token: &str, spec: Token) {
        self.with(|s| s.tokens.insert(token.to_owned(), spec));
    }

    /// The user `token` belongs to, as `whoami` answers it.
    pub fn set_token_user(&self, token: &str, user: &str) {
        self.with(|s| s.token_users.insert(token.to_owned(), user.to_owned()));
    }

    /// A PR of `project` whose head is now `head`.
    pub fn set_pull(&self, project: &str, id: u64, head: &str) {
        self.with(|s| s.pulls.insert((project.to_owned(), id), head.to_owned()));
    }

    /// Who opened PR `id` of `project`, and which branch it targets.
    pub fn set_pull_author(&self, project: &str, id: u64, author: &str, branch: &str) {
        self.with(|s| s.pull_author.insert((project.to_owned(), id), (author.to_owned(), branch.to_owned())));
    }

    /// Where the head of PR `id` of `project` comes from.
    pub fn set_pull_source(&self, project: &str, id: u64, source: PullSource) {
        self.with(|s| s.pull_source.insert((project.to_owned(), id), source));
    }

    /// `user` may commit to every branch of `project` (`branches` `None`: a committer or
    /// admin), or only to `branches` (a collaborator's ACL).
    pub fn add_committer(&self, project: &str, user: &str, branches: Option<&[&str]>) {
        let branches = branches.map(|b| b.iter().map(|b| (*b).to_owned()).collect());
        self.with(|s| s.committers.insert((project.to_owned(), user.to_owned()), branches));
    }

    /// `hascommit` calls received: (project, query).
    pub fn hascommit_calls(&self) -> Vec<(String, String)> {
        self.with(|s| {
            s.seen
                .iter()
                .filter_map(|r| wire::hascommit_path(&r.path).map(|project| (project, r.query.clone())))
                .collect()
        })
    }

    /// Closes or merges a PR (`Closed`, `Merged`).
    pub fn set_pull_status(&self, project: &str, id: u64, status: &str) {
        self.with(|s| s.pull_status.insert((project.to_owned(), id), status.to_owned()));
    }

    pub fn push_fault(&self, fault: Fault) {
        self.with(|s| s.faults.push_back(fault));
    }

    pub fn flags(&self) -> Vec<StoredFlag> {
        self.with(|s| s.flags.clone())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// Flag writes received (POSTs), including refused ones.
    pub fn posts(&self) -> usize {
        self.with(|s| s.seen.iter().filter(|r| r.method == "POST").count())
    }
}

impl Drop for FakePagure {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The owner of a token whose user was not set.
pub const DEFAULT_TOKEN_USER: &str = "ci-bot";

/// The author of a PR whose author was not set.
pub const DEFAULT_AUTHOR: &str = "contributor";
/// The target branch of a PR whose author was not set.
pub const DEFAULT_BRANCH: &str = "main";
