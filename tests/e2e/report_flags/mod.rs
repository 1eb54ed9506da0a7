//! The report side against a contract-faithful fake Pagure: the flag client (token form,
//! string percent, uid updates, error bodies, retries: `client`), the report stage on
//! CodeBuild and CodePipeline event fixtures (`stage`), the `report` CLI and the whole local
//! path from trigger to final flag (`local`). This module holds what they share: the fake
//! Pagure's set-up, the client, and CodeBuild events (`trust` builds on them too).

mod client;
mod local;
mod stage;

use std::time::Duration;

use bridge_core::forge::RetryPolicy;
use bridge_pagure::PagureClient;
use e2e_tests::fake_pagure::{FakePagure, Token};
use serde_json::{Value, json};

const TOKEN: &str = "PAGUREAPITOKEN0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789AB";
const SHA: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
const UID: &str = "0123456789abcdef0123456789abcdef";

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(40),
        timeout: Duration::from_millis(500),
    }
}

fn client() -> PagureClient {
    PagureClient::new(quick()).expect("client")
}

async fn pagure() -> FakePagure {
    let fake = FakePagure::start().await;
    for project in ["demo", "rpms/bash", "fork/bob/demo"] {
        fake.add_project(project);
    }
    fake.add_token(TOKEN, Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false });
    fake.set_pull("demo", 2, SHA);
    fake
}

fn event_fixture(name: &str) -> Vec<u8> {
    std::fs::read(e2e_tests::root().join("tests/fixtures/events").join(name)).expect(name)
}

pub(crate) fn codebuild_event(
    status: &str,
    failed_phase: Option<(&str, &str, &str)>,
    variables: &[(&str, &str)],
) -> Value {
    let mut event: Value =
        serde_json::from_slice(&event_fixture("codebuild-build-state-change.json")).expect("fixture");
    event["detail"]["build-status"] = json!(status);
    if let Some((phase, phase_status, context)) = failed_phase {
        let phases = event["detail"]["additional-information"]["phases"].as_array_mut().expect("phases");
        for entry in phases.iter_mut() {
            if entry["phase-type"] == json!(phase) {
                entry["phase-status"] = json!(phase_status);
                entry["phase-context"] = json!([context]);
            }
        }
    }
    let vars = event["detail"]["additional-information"]["environment"]["environment-variables"]
        .as_array_mut()
        .expect("variables");
    for (name, value) in variables {
        vars.retain(|v| v["name"] != json!(name));
        if !value.is_empty() {
            vars.push(json!({"name": name, "type": "PLAINTEXT", "value": value}));
        }
    }
    event
}

/// The variables a local pipeline run got (`GET /runs/<id>`), as name and value.
pub(crate) fn run_variables(run: &Value) -> Vec<(String, String)> {
    run["variables"]
        .as_object()
        .expect("variables")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}
