//! A fake Pagure for tests, built from `CONTRACT.md` sections (a) and (e): the commit and
//! pull-request flag endpoints (POST and GET) for plain, namespaced and forked projects,
//! a pull request's own JSON (`status`, `user`, `branch`, `commit_stop`, `repo_from`,
//! `remote_git`), and `hascommit`
//! (project committers and per-branch collaborators), a project's own JSON
//! (`GET /api/0/[fork/<user>/][<namespace>/]<repo>`) and `POST /api/0/-/whoami`,
//! with Pagure's token header parsing, ACLs, project-scoped tokens, form validation, uid
//! create/update semantics and its exact error bodies. Faults can be scripted per request.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

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
                    let handler = service_fn(move |request| answer(state.clone(), request));
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
            s.seen.iter().filter_map(|r| hascommit_path(&r.path).map(|project| (project, r.query.clone()))).collect()
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

fn respond(status: u16, body: Value) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert("content-type", "application/json".parse().expect("header"));
    response
}

fn error(status: u16, code: &str, text: &str, errors: Option<Value>) -> hyper::Response<Full<Bytes>> {
    let mut body = json!({"error": text, "error_code": code});
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    respond(status, body)
}

/// The exact 401 of `pagure/utils.py:145-153`.
fn invalid_token(app_url: &str, errors: Option<&str>) -> hyper::Response<Full<Bytes>> {
    error(
        401,
        "EINVALIDTOK",
        &format!(
            "Invalid or expired token. Please visit {app_url}settings#nav-api-tab to get or renew your API token."
        ),
        errors.map(|e| json!(e)),
    )
}

/// Where a flag request goes.
struct Route {
    project: String,
    on: On,
}

enum On {
    Commit(String),
    Pull(u64),
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/api/0/")?.strip_suffix("/flag")?;
    if let Some((project, sha)) = rest.rsplit_once("/c/") {
        return Some(Route { project: project.to_owned(), on: On::Commit(sha.to_owned()) });
    }
    let (project, id) = rest.rsplit_once("/pull-request/")?;
    Some(Route { project: project.to_owned(), on: On::Pull(id.parse().ok()?) })
}

/// The owner of a token whose user was not set.
pub const DEFAULT_TOKEN_USER: &str = "ci-bot";

/// The author of a PR whose author was not set.
pub const DEFAULT_AUTHOR: &str = "contributor";
/// The target branch of a PR whose author was not set.
pub const DEFAULT_BRANCH: &str = "main";

/// `Project.to_json` (pagure/lib/model.py), its naming fields, of `path` (`[ns/]name`), or
/// of `fork_of`'s fork of it: `fullname` is `forks/<user>/[ns/]name` then, `url_path`
/// `fork/<user>/[ns/]name` (Pagure's samples: `"fullname": "forks/bob/demo"`).
fn project_json(path: &str, fork_of: Option<&str>) -> Value {
    let (namespace, name) = match path.rsplit_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, path),
    };
    let (fullname, url_path, owner) = match fork_of {
        Some(user) => (format!("forks/{user}/{path}"), format!("fork/{user}/{path}"), user),
        None => (path.to_owned(), path.to_owned(), "pingou"),
    };
    json!({
        "name": name, "namespace": namespace, "fullname": fullname, "url_path": url_path,
        "parent": null, "user": {"name": owner, "fullname": owner, "url_path": format!("user/{owner}")}
    })
}

/// `/api/0/<project>/hascommit`.
fn hascommit_path(path: &str) -> Option<String> {
    Some(path.strip_prefix("/api/0/")?.strip_suffix("/hascommit")?.to_owned())
}

/// `/api/0/<project>/pull-request/<id>` (the PR itself, not its flags).
fn pull_request_path(path: &str) -> Option<(String, u64)> {
    let (project, id) = path.strip_prefix("/api/0/")?.rsplit_once("/pull-request/")?;
    Some((project.to_owned(), id.parse().ok()?))
}

/// Pagure's URL validator (`pagure/utils.py:485-561`), as CONTRACT.md states it.
fn url_valid(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else { return false };
    if !matches!(scheme, "http" | "https" | "ftp" | "git") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if authority.starts_with('[') {
        return authority.contains(']');
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { authority })
    };
    if host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    match host.rsplit_once('.') {
        Some((head, tld)) => !head.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()),
        None => false,
    }
}

/// Form or JSON fields; a JSON number for `percent` is what makes Pagure fail with 500.
enum Fields {
    Ok(HashMap<String, String>),
    NumericPercent,
}

fn fields(content_type: Option<&str>, body: &[u8]) -> Fields {
    if content_type.is_some_and(|c| c.starts_with("application/json")) {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(map) = value.as_object() else { return Fields::Ok(HashMap::new()) };
        if map.get("percent").is_some_and(Value::is_number) {
            return Fields::NumericPercent;
        }
        return Fields::Ok(map.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect());
    }
    Fields::Ok(url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

/// `api_project` (pagure/api/project.py: `@api_method` only, so a token is not even looked
/// at) on its four routes, and `api_whoami` (pagure/api/__init__.py, `@api_login_optional`);
/// anything else is a 404.
fn project_or_whoami(
    s: &State,
    method: &hyper::Method,
    path: &str,
    authorization: Option<String>,
    app_url: &str,
) -> hyper::Response<Full<Bytes>> {
    let Some(rest) = path.strip_prefix("/api/0/") else { return error(404, "ENOCODE", "Not found", None) };
    if rest == "-/whoami" {
        if method != hyper::Method::POST {
            return error(405, "ENOCODE", "Method not allowed", None);
        }
        // `check_api_acls(None, optional=True)` (pagure/utils.py): no usable token lets the
        // view run, which answers 401 without `errors`; an unknown or expired one is a 401
        // with them.
        let presented = authorization
            .filter(|h| h.contains("token"))
            .map(|h| h.split_once("token").map(|(_, t)| t.trim().to_owned()).unwrap_or_default())
            .filter(|t| !t.is_empty());
        let Some(presented) = presented else { return invalid_token(app_url, None) };
        return match s.tokens.get(&presented) {
            None => invalid_token(app_url, Some("Invalid token")),
            Some(token) if token.expired => invalid_token(app_url, Some("Expired token")),
            Some(_) => {
                let user = s.token_users.get(&presented).map_or(DEFAULT_TOKEN_USER, String::as_str);
                respond(200, json!({"username": user}))
            }
        };
    }
    let segments: Vec<&str> = rest.split('/').collect();
    // `/<repo>`, `/<namespace>/<repo>`, `/fork/<username>/<repo>`, `/fork/<username>/<namespace>/<repo>`.
    let shaped = segments.iter().all(|s| !s.is_empty())
        && match segments.as_slice() {
            ["fork", _, _] | ["fork", _, _, _] => true,
            [_] | [_, _] => segments[0] != "-",
            _ => false,
        };
    if !shaped || method != hyper::Method::GET {
        return error(404, "ENOCODE", "Not found", None);
    }
    if !s.projects.iter().any(|p| p == rest) {
        return error(404, "ENOPROJECT", "Project not found", None);
    }
    match rest.strip_prefix("fork/").and_then(|r| r.split_once('/')) {
        Some((user, parent)) => {
            let mut fork = project_json(parent, Some(user));
            fork["parent"] = project_json(parent, None);
            respond(200, fork)
        }
        None => respond(200, project_json(rest, None)),
    }
}

fn public_flag(flag: &StoredFlag) -> Value {
    let percent = flag.percent.as_ref().and_then(|p| p.parse::<i64>().ok());
    json!({
        "comment": flag.comment, "commit_hash": flag.commit,
        "date_created": format!("{}.5", 1795288030 + flag.updated), "date_updated": format!("{}.5", 1795288030 + flag.updated),
        "percent": percent, "status": flag.status, "url": flag.url, "username": flag.username,
        "user": {"name": "ci-bot", "fullname": "CI bot", "url_path": "user/ci-bot"}
    })
}

async fn answer(
    state: Arc<Mutex<State>>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = header("host").unwrap_or_default();
    let app_url = format!("http://{host}/");
    let fault = {
        let mut s = state.lock().expect("state");
        s.seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
        });
        s.faults.pop_front()
    };
    match fault {
        Some(Fault::Status(status, text)) => {
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
            *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
            return Ok(response);
        }
        Some(Fault::Delay(wait)) => tokio::time::sleep(wait).await,
        None => {}
    }
    if parts.method == hyper::Method::GET
        && let Some((project, id)) = pull_request_path(parts.uri.path())
    {
        // `GET /api/0/<repo>/pull-request/<id>` (pagure/api/fork.py): the PR as JSON.
        let s = state.lock().expect("state");
        if !s.projects.contains(&project) {
            return Ok(error(404, "ENOPROJECT", "Project not found", None));
        }
        let Some(head) = s.pulls.get(&(project.clone(), id)) else {
            return Ok(error(404, "ENOREQ", "Pull-Request not found", None));
        };
        let status = s.pull_status.get(&(project.clone(), id)).cloned().unwrap_or_else(|| "Open".into());
        let (author, branch) = s
            .pull_author
            .get(&(project.clone(), id))
            .cloned()
            .unwrap_or_else(|| (DEFAULT_AUTHOR.into(), DEFAULT_BRANCH.into()));
        let source = s.pull_source.get(&(project.clone(), id)).cloned().unwrap_or(PullSource::Project);
        // `Project.fullname` of the target: `[ns/]name` (PRs are disabled on forks).
        let target = project_json(&project, None);
        let (repo_from, remote_git) = match source {
            PullSource::Project => (target.clone(), Value::Null),
            PullSource::Fork(user) => {
                let mut fork = project_json(&project, Some(&user));
                fork["parent"] = target.clone();
                (fork, Value::Null)
            }
            PullSource::Remote(url) => (Value::Null, json!(url)),
        };
        // `PullRequest.to_json` (pagure/lib/model.py), the fields the bridge may read.
        return Ok(respond(
            200,
            json!({
                "id": id, "status": status, "branch": branch, "commit_stop": head,
                "user": {"name": author, "fullname": author, "url_path": format!("user/{author}")},
                "project": target, "repo_from": repo_from, "remote_git": remote_git, "comments": []
            }),
        ));
    }
    if parts.method == hyper::Method::GET
        && let Some(project) = hascommit_path(parts.uri.path())
    {
        // `api_project_hascommit` (pagure/api/project.py): no login; `user` and `branch`
        // from the query, both needed and non-empty. Its APIError carries a custom text, but
        // `api_method` answers EINVALIDREQ's own message (tests/test_pagure_flask_api_project_hascommit.py).
        let s = state.lock().expect("state");
        if !s.projects.contains(&project) {
            return Ok(error(404, "ENOPROJECT", "Project not found", None));
        }
        let query: HashMap<String, String> = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (Some(user), Some(branch)) =
            (query.get("user").filter(|u| !u.is_empty()), query.get("branch").filter(|b| !b.is_empty()))
        else {
            return Ok(error(400, "EINVALIDREQ", "Invalid or incomplete input submitted", None));
        };
        // `is_repo_collaborator(project, "refs/heads/<branch>", user)`.
        let hascommit = match s.committers.get(&(project.clone(), user.clone())) {
            Some(None) => true,
            Some(Some(branches)) => branches.contains(branch),
            None => false,
        };
        return Ok(respond(
            200,
            json!({"args": {"project": {"fullname": project}, "branch": branch, "user": user}, "hascommit": hascommit}),
        ));
    }
    let Some(route) = route(parts.uri.path()) else {
        let s = state.lock().expect("state");
        return Ok(project_or_whoami(&s, &parts.method, parts.uri.path(), header("authorization"), &app_url));
    };
    let mut s = state.lock().expect("state");
    if !s.projects.contains(&route.project) {
        return Ok(error(404, "ENOPROJECT", "Project not found", None));
    }
    // PR endpoints: forks have pull requests disabled; the flag goes on the current head.
    let commit = match &route.on {
        On::Pull(_) if route.project.starts_with("fork/") => {
            return Ok(error(
                404,
                "EPULLREQUESTSDISABLED",
                "Pull-Request have been deactivated for this project",
                None,
            ));
        }
        On::Pull(id) => match s.pulls.get(&(route.project.clone(), *id)) {
            Some(head) => head.clone(),
            None => return Ok(error(404, "ENOREQ", "Pull-Request not found", None)),
        },
        On::Commit(sha) => sha.clone(),
    };
    if parts.method == hyper::Method::GET {
        let mut flags: Vec<&StoredFlag> =
            s.flags.iter().filter(|f| f.project == route.project && f.commit == commit).collect();
        flags.sort_by_key(|f| f.updated);
        let listed: Vec<Value> = flags.into_iter().map(public_flag).collect();
        let body = match route.on {
            On::Commit(_) => json!({"total_flags": listed.len(), "flags": listed}),
            On::Pull(_) => json!({"flags": listed}),
        };
        return Ok(respond(200, body));
    }
    if parts.method != hyper::Method::POST {
        return Ok(error(405, "ENOCODE", "Method not allowed", None));
    }
    // `if "token" in header: token = header.split("token", 1)[1].strip()` (utils.py:92-95).
    let presented = header("authorization")
        .filter(|h| h.contains("token"))
        .map(|h| h.split_once("token").map(|(_, t)| t.trim().to_owned()).unwrap_or_default());
    let Some(token) = presented.and_then(|t| s.tokens.get(&t).cloned()) else {
        return Ok(invalid_token(&app_url, Some("Invalid token")));
    };
    if token.expired {
        return Ok(invalid_token(&app_url, Some("Expired token")));
    }
    let acl = match route.on {
        On::Commit(_) => "commit_flag",
        On::Pull(_) => "pull_request_flag",
    };
    if !token.acls.contains(&acl) {
        return Ok(invalid_token(&app_url, Some(&format!("Missing ACLs: {acl}"))));
    }
    if token.project.as_ref().is_some_and(|p| *p != route.project) {
        return Ok(invalid_token(&app_url, None));
    }
    if let On::Commit(sha) = &route.on
        && !sha.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(error(404, "ENOCOMMIT", "No such commit found in this repository", None));
    }
    let mut form = match fields(header("content-type").as_deref(), &body) {
        Fields::Ok(form) => form,
        Fields::NumericPercent => {
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(
                b"<!doctype html><title>500 Internal Server Error</title><h1>Internal Server Error</h1>",
            )));
            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        }
    };
    let mut errors = serde_json::Map::new();
    let mut required = vec!["username", "comment", "url"];
    if matches!(route.on, On::Commit(_)) {
        required.push("status");
    }
    for field in required {
        if form.get(field).is_none_or(|v| v.trim().is_empty()) {
            errors.insert(field.to_owned(), json!(["This field is required."]));
        }
    }
    if let Some(status) = form.get("status").filter(|v| !v.is_empty())
        && !["success", "failure", "error", "pending", "canceled"].contains(&status.as_str())
    {
        errors.insert("status".into(), json!(["Not a valid choice."]));
    }
    if let Some(url) = form.get("url").filter(|v| !v.trim().is_empty())
        && !url_valid(url)
    {
        errors.insert("url".into(), json!(["Invalid input."]));
    }
    if !errors.is_empty() {
        return Ok(error(400, "EINVALIDREQ", "Invalid or incomplete input submitted", Some(Value::Object(errors))));
    }
    // PR flag without status: from percent (fork.py:1127-1147).
    let status = match form.remove("status").filter(|s| !s.is_empty()) {
        Some(status) => status,
        None => match form.get("percent").map(String::as_str) {
            None | Some("") => "pending".into(),
            Some("0") => "failure".into(),
            Some(_) => "success".into(),
        },
    };
    s.clock += 1;
    let clock = s.clock;
    let comment = form.get("comment").map(|c| c.trim().to_owned()).unwrap_or_default();
    let url = form.get("url").cloned().unwrap_or_default();
    let percent = form.get("percent").filter(|p| !p.is_empty()).cloned();
    let uid = form.get("uid").filter(|u| !u.is_empty()).cloned();
    // Looked up by (commit, uid) only, whatever the project (query.py:3565-3584).
    let existing = uid.as_ref().and_then(|uid| s.flags.iter_mut().find(|f| f.commit == commit && f.uid == *uid));
    let (message, flag) = match existing {
        Some(flag) => {
            flag.comment = comment;
            flag.url = url;
            flag.status = status;
            flag.percent = percent;
            flag.updated = clock;
            ("Flag updated", flag.clone())
        }
        None => {
            let flag = StoredFlag {
                project: route.project.clone(),
                commit: commit.clone(),
                uid: uid.unwrap_or_else(|| format!("{:032x}", clock)),
                username: form.get("username").cloned().unwrap_or_default(),
                comment,
                url,
                status,
                percent,
                updated: clock,
            };
            s.flags.push(flag.clone());
            ("Flag added", flag)
        }
    };
    let mut body = json!({"flag": public_flag(&flag), "message": message, "uid": flag.uid});
    if matches!(route.on, On::Pull(_)) {
        body["avatar_url"] = json!("https://seccdn.libravatar.org/avatar/x");
        body["user"] = json!("ci-bot");
    }
    Ok(respond(200, body))
}
