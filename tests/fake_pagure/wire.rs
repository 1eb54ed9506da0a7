//! Pagure's side of the wire, as the fake answers it: JSON responses and Pagure's error
//! bodies (its exact 401), a project's and a flag's JSON, the API paths the fake routes, the
//! URL validator and how a flag's form or JSON fields are read.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use super::StoredFlag;

pub(super) fn respond(status: u16, body: Value) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert("content-type", "application/json".parse().expect("header"));
    response
}

pub(super) fn error(status: u16, code: &str, text: &str, errors: Option<Value>) -> hyper::Response<Full<Bytes>> {
    let mut body = json!({"error": text, "error_code": code});
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    respond(status, body)
}

/// The exact 401 of `pagure/utils.py:145-153`.
pub(super) fn invalid_token(app_url: &str, errors: Option<&str>) -> hyper::Response<Full<Bytes>> {
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
pub(super) struct Route {
    pub(super) project: String,
    pub(super) on: On,
}

pub(super) enum On {
    Commit(String),
    Pull(u64),
}

pub(super) fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/api/0/")?.strip_suffix("/flag")?;
    if let Some((project, sha)) = rest.rsplit_once("/c/") {
        return Some(Route { project: project.to_owned(), on: On::Commit(sha.to_owned()) });
    }
    let (project, id) = rest.rsplit_once("/pull-request/")?;
    Some(Route { project: project.to_owned(), on: On::Pull(id.parse().ok()?) })
}

/// `Project.to_json` (pagure/lib/model.py), its naming fields, of `path` (`[ns/]name`), or
/// of `fork_of`'s fork of it: `fullname` is `forks/<user>/[ns/]name` then, `url_path`
/// `fork/<user>/[ns/]name` (Pagure's samples: `"fullname": "forks/bob/demo"`).
pub(super) fn project_json(path: &str, fork_of: Option<&str>) -> Value {
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
pub(super) fn hascommit_path(path: &str) -> Option<String> {
    Some(path.strip_prefix("/api/0/")?.strip_suffix("/hascommit")?.to_owned())
}

/// `/api/0/<project>/pull-request/<id>` (the PR itself, not its flags).
pub(super) fn pull_request_path(path: &str) -> Option<(String, u64)> {
    let (project, id) = path.strip_prefix("/api/0/")?.rsplit_once("/pull-request/")?;
    Some((project.to_owned(), id.parse().ok()?))
}

/// Pagure's URL validator (`pagure/utils.py:485-561`), as CONTRACT.md states it.
pub(super) fn url_valid(text: &str) -> bool {
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
pub(super) enum Fields {
    Ok(HashMap<String, String>),
    NumericPercent,
}

pub(super) fn fields(content_type: Option<&str>, body: &[u8]) -> Fields {
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

pub(super) fn public_flag(flag: &StoredFlag) -> Value {
    let percent = flag.percent.as_ref().and_then(|p| p.parse::<i64>().ok());
    json!({
        "comment": flag.comment, "commit_hash": flag.commit,
        "date_created": format!("{}.5", 1795288030 + flag.updated), "date_updated": format!("{}.5", 1795288030 + flag.updated),
        "percent": percent, "status": flag.status, "url": flag.url, "username": flag.username,
        "user": {"name": "ci-bot", "fullname": "CI bot", "url_path": "user/ci-bot"}
    })
}
