//! The trigger's variables: the names and values a build gets in its buildspec, in a fixed
//! order, and the subset the pipeline is started with (what the report stage needs to find
//! the build again). Kept apart from the editor: the work stage and the templates use these
//! names without editing anything.

use crate::model::{BuildRequest, Cause};

/// The variables the pipeline is started with (never empty, so the pipeline declares them
/// all, and its CodeBuild action passes them on): enough for the report stage to find the
/// build request and the commit. `PAGURE_PR_ID` and `PAGURE_BRANCH_TO` stay in the buildspec
/// only, where they may be empty; the cause tells a PR number from a commit. `PAGURE_BRANCH`
/// too: the report stage does not need it, and a branch name is the PR author's choice
/// (`"`, `,`, `{` are allowed by git), which the templates would paste into the CodeBuild
/// action's JSON text. The work stage refuses any value these carry outside a character set
/// that needs no JSON escaping ([`crate::work::check_pipeline_variables`]).
pub const PIPELINE_VARIABLES: [&str; 5] =
    ["PAGURE_REQUEST_ID", "PAGURE_PROJECT", "PAGURE_REPO", "PAGURE_CAUSE", "PAGURE_COMMIT"];

/// The default value the pipelines declare for each of [`PIPELINE_VARIABLES`]: a run started
/// by hand ("Release change") carries it, and the report stage ignores that run.
pub const MANUAL_RUN: &str = "manual";

/// The variables a build gets, in this order. Empty values are kept so that every build
/// sees the same names (`PAGURE_BRANCH_TO` and `PAGURE_PR_ID` are empty for commit builds).
pub fn trigger_variables(request: &BuildRequest, commit: &str) -> Vec<(&'static str, String)> {
    let pr_id = match request.cause {
        Cause::PullRequest { id } => id.to_string(),
        Cause::Commit { .. } => String::new(),
    };
    vec![
        ("PAGURE_CAUSE", request.cause.as_trigger_value()),
        ("PAGURE_REPO", request.repo_url.clone()),
        ("PAGURE_BRANCH", request.branch.clone()),
        ("PAGURE_BRANCH_TO", request.branch_to.clone().unwrap_or_default()),
        ("PAGURE_COMMIT", commit.to_owned()),
        ("PAGURE_PR_ID", pr_id),
        ("PAGURE_PROJECT", request.project.target_fullname()),
        ("PAGURE_REQUEST_ID", request.request_id.clone()),
    ]
}
