//! A flag from inside a build: the `report` command reads `PAGURE_*` and `CODEBUILD_*`.

use std::collections::BTreeMap;

use super::*;
use crate::forge::{Flag, FlagStatus, FlagTarget};
use crate::model::ProjectRef;

/// A flag reported from inside a build (`pagure-ci-bridge report`, for users without the
/// report Lambda): the PAGURE_* variables the bridge injected, and CodeBuild's own
/// `CODEBUILD_BUILD_ARN`, `CODEBUILD_BUILD_NUMBER` and `CODEBUILD_BUILD_SUCCEEDING`.
/// `status` `None` means "from `CODEBUILD_BUILD_SUCCEEDING`". The uid is the bridge's, so
/// the flag it posted when the build was queued is the one updated.
pub fn flag_from_build_env(
    env: &BTreeMap<String, String>,
    status: Option<FlagStatus>,
    comment: Option<&str>,
    url: Option<&str>,
    username: &str,
) -> Result<(FlagTarget, Flag), String> {
    let correlation = Correlation::from_variables(env)
        .ok_or("PAGURE_REQUEST_ID is not set: this build was not started by pagure-ci-bridge")??;
    let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let label = match get("CODEBUILD_BUILD_NUMBER") {
        Some(n) => format!("Build #{n}"),
        None => "Build".to_owned(),
    };
    let status = match status {
        Some(status) => status,
        None => match get("CODEBUILD_BUILD_SUCCEEDING") {
            Some("1") => FlagStatus::Success,
            Some("0") => FlagStatus::Failure,
            other => return Err(format!("CODEBUILD_BUILD_SUCCEEDING is {other:?}, not 0 or 1: give --status")),
        },
    };
    let (default_comment, percent) = match status {
        FlagStatus::Pending => (format!("{label} running"), None),
        FlagStatus::Success => (format!("{label} succeeded"), Some(100)),
        FlagStatus::Failure => (format!("{label} failed"), Some(0)),
        FlagStatus::Error => (format!("{label} could not run"), None),
        FlagStatus::Canceled => (format!("{label} stopped"), None),
    };
    let url = match (url, get("CODEBUILD_BUILD_ARN")) {
        (Some(url), _) => url.to_owned(),
        // arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>
        (None, Some(arn)) => {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let build = arn.rsplit_once(":build/").map(|(_, id)| id).unwrap_or_default();
            let project = build.split(':').next().unwrap_or_default();
            match parts.as_slice() {
                [_, _, _, region, account, _] if !build.is_empty() => {
                    codebuild_console_url(region, account, project, build)
                }
                _ => return Err(format!("CODEBUILD_BUILD_ARN `{arn}` is not a build ARN")),
            }
        }
        (None, None) => return Err("no --url and no CODEBUILD_BUILD_ARN to link the flag to".into()),
    };
    // The repository was checked by the bridge; here only its fork part matters.
    let fork_user = correlation
        .repo
        .strip_suffix(&format!("/{}.git", correlation.project))
        .and_then(|head| head.rsplit_once("/forks/"))
        .map(|(_, user)| user.to_owned())
        .filter(|user| !user.contains('/'));
    let (namespace, name) = match correlation.project.rsplit_once('/') {
        Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
        None => (None, correlation.project.clone()),
    };
    let project = ProjectRef { key: String::new(), namespace, name, fork_user };
    let subject = subject_of(&correlation, &project);
    let update = subject.update(status, comment.unwrap_or(&default_comment), url, percent);
    let flag = Flag {
        username: username.to_owned(),
        comment: update.comment,
        url: update.url,
        status: update.status,
        percent: update.percent,
        uid: update.uid,
    };
    flag.check().map_err(|e| e.to_string())?;
    Ok((update.target, flag))
}
