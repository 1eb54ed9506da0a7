//! The fake's answers: a pull request's JSON, `hascommit`, a project's JSON, `whoami`, and
//! the flag endpoints (GET lists, POST adds or updates by uid) with Pagure's token, ACL and
//! form checks; scripted faults first.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::wire::{
    Fields, On, error, fields, hascommit_path, invalid_token, project_json, public_flag, pull_request_path, respond,
    route, url_valid,
};
use super::{DEFAULT_AUTHOR, DEFAULT_BRANCH, DEFAULT_TOKEN_USER, Fault, PullSource, Seen, State, StoredFlag};

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

pub(super) async fn answer(
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
