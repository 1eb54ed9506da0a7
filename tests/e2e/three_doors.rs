//! The three doors give the same build request for the same event, using Pagure's own
//! captures: the Jenkins-style calls pagure-ci made and the web-hooks Pagure delivered.

use bridge_core::auth::{Secret, sign1, sign256};
use bridge_core::model::{BuildRequest, BuildTarget, Cause, TriggerKind};
use e2e_tests::{
    CAPTURE_CI_TOKEN, CAPTURE_PROJECT_TOML, capture_secrets_json, jenkins_captures, local_service, trigger_request,
    webhook_capture,
};

type Service = pagure_ci_bridge::LocalAcceptService;

async fn send(
    service: &Service,
    queued: &mut tokio::sync::mpsc::Receiver<BuildRequest>,
    request: bridge_core::accept::TriggerHttpRequest,
) -> (u16, serde_json::Value, Option<String>, Option<BuildRequest>) {
    let response = service.handle(request).await;
    let location = response.headers().get("location").map(|v| v.to_str().expect("ascii").to_owned());
    let body = serde_json::from_slice(response.body()).expect("json body");
    (response.status().as_u16(), body, location, queued.try_recv().ok())
}

/// Replays every captured pagure-ci request; returns the build requests queued.
async fn replay_jenkins(
    service: &Service,
    queued: &mut tokio::sync::mpsc::Receiver<BuildRequest>,
) -> Vec<BuildRequest> {
    let mut built = Vec::new();
    for capture in jenkins_captures() {
        let headers: Vec<(String, String)> = capture["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("str").to_owned()))
            .collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let path = format!("{}?{}", capture["path"].as_str().expect("path"), capture["query"].as_str().expect("query"));
        let request = trigger_request(capture["method"].as_str().expect("method"), &path, &headers, b"");
        let (status, body, location, request) = send(service, queued, request).await;
        if capture["method"] == "GET" {
            assert_eq!(
                (status, body["error"].as_str()),
                (404, Some("no_crumb")),
                "crumb: python-jenkins takes 404 as 'no crumb'"
            );
            continue;
        }
        assert_eq!(status, 201, "{path}: {body}");
        let request = request.expect("queued");
        let location = location.expect("Location");
        assert_eq!(location, format!("http://127.0.0.1:5601/jenkins/queue/item/{}/", request.queue_item_number()));
        assert_eq!(body["request_id"], request.request_id.as_str());
        built.push(request);
    }
    built
}

fn expected(cause: Cause, repo: &str, branch: &str, branch_to: Option<&str>, fork_user: Option<&str>) -> BuildTarget {
    BuildTarget {
        project: bridge_core::model::ProjectRef {
            key: "demo-job".into(),
            namespace: None,
            name: "demo".into(),
            fork_user: fork_user.map(String::from),
        },
        repo_url: repo.into(),
        cause,
        branch: branch.into(),
        branch_to: branch_to.map(String::from),
    }
}

#[tokio::test]
async fn pagure_ci_captures_become_the_expected_requests() {
    let (service, mut queued) = local_service(CAPTURE_PROJECT_TOML, &capture_secrets_json());
    let built = replay_jenkins(&service, &mut queued).await;
    let sha = |s: &str| Cause::Commit { sha: s.into() };
    let repo = "git://127.0.0.1:5602/demo.git";
    let want = vec![
        expected(sha("e886513dc44b134db15541ef1a4b05f908ddce11"), repo, "main", None, None),
        expected(sha("d2085936e8b068ce55bd07cbf3cf794b8fe7a996"), repo, "feature-1", None, None),
        expected(Cause::PullRequest { id: 1 }, repo, "feature-1", Some("main"), None),
        expected(
            Cause::PullRequest { id: 2 },
            "git://127.0.0.1:5602/forks/bob/demo.git",
            "bob-fix",
            Some("main"),
            Some("bob"),
        ),
        expected(sha("05bab967134e26fd2a307065b49ce0bc2a2063ed"), repo, "feature-1", None, None),
        expected(Cause::PullRequest { id: 1 }, repo, "feature-1", Some("main"), None),
        expected(Cause::PullRequest { id: 3 }, repo, "remote-fix", Some("main"), None),
    ];
    assert_eq!(built.iter().map(BuildRequest::target).collect::<Vec<_>>(), want);
    assert!(built.iter().all(|r| r.trigger == TriggerKind::Jenkins));
    // The same PR triggered twice has the same key; different events have different ones.
    assert_eq!(built[2].idempotency_key, built[5].idempotency_key);
    assert_ne!(built[0].idempotency_key, built[1].idempotency_key);
}

#[test]
fn our_signatures_match_the_ones_pagure_sent() {
    for topic in [
        "git.receive",
        "pull-request.new",
        "pull-request.updated",
        "pull-request.comment.added",
        "commit.flag.added",
        "project.edit",
    ] {
        let capture = webhook_capture(topic);
        let key = Secret::new(capture.hook_token.clone());
        let header = |name: &str| capture.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).expect(name);
        assert_eq!(sign256(&capture.body, &key), header("X-Pagure-Signature-256"), "{topic}");
        assert_eq!(sign1(&capture.body, &key), header("X-Pagure-Signature"), "{topic}");
    }
}

async fn deliver(
    service: &Service,
    queued: &mut tokio::sync::mpsc::Receiver<BuildRequest>,
    topic: &str,
) -> (u16, serde_json::Value, Option<BuildRequest>) {
    let capture = webhook_capture(topic);
    let headers: Vec<(&str, &str)> = capture.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, body, _, request) =
        send(service, queued, trigger_request("POST", "/webhook/demo-job", &headers, &capture.body)).await;
    (status, body, request)
}

async fn json_trigger(
    service: &Service,
    queued: &mut tokio::sync::mpsc::Receiver<BuildRequest>,
    target: &BuildTarget,
) -> BuildRequest {
    let body = serde_json::json!({
        "cause": target.cause.as_trigger_value(),
        "repo": target.repo_url,
        "branch": target.branch,
        "branch_to": target.branch_to,
    })
    .to_string();
    let auth = format!("token {CAPTURE_CI_TOKEN}");
    let request = trigger_request(
        "POST",
        "/trigger/demo-job",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        body.as_bytes(),
    );
    let (status, response, _, request) = send(service, queued, request).await;
    assert_eq!(status, 202, "{response}");
    request.expect("queued")
}

#[tokio::test]
async fn web_hooks_jenkins_calls_and_json_agree() {
    let (service, mut queued) = local_service(CAPTURE_PROJECT_TOML, &capture_secrets_json());
    let jenkins = replay_jenkins(&service, &mut queued).await;
    // web-hook topic → the pagure-ci call made for the same event
    for (topic, jenkins_index) in
        [("git.receive", 4), ("pull-request.updated", 5), ("pull-request.comment.added", 5), ("pull-request.new", 6)]
    {
        let (status, body, from_hook) = deliver(&service, &mut queued, topic).await;
        assert_eq!(status, 202, "{topic}: {body}");
        let from_hook = from_hook.unwrap_or_else(|| panic!("{topic} queued nothing: {body}"));
        assert_eq!(from_hook.trigger, TriggerKind::Webhook);
        assert_eq!(from_hook.target(), jenkins[jenkins_index].target(), "{topic}");
        assert_eq!(from_hook.idempotency_key, jenkins[jenkins_index].idempotency_key, "{topic}");
    }
    for from_jenkins in &jenkins {
        let from_json = json_trigger(&service, &mut queued, &from_jenkins.target()).await;
        assert_eq!(from_json.trigger, TriggerKind::Json);
        assert_eq!(from_json.target(), from_jenkins.target());
        assert_eq!(from_json.idempotency_key, from_jenkins.idempotency_key);
        assert_ne!(from_json.request_id, from_jenkins.request_id);
    }
}

#[tokio::test]
async fn other_topics_are_ignored_with_a_reason() {
    let (service, mut queued) = local_service(CAPTURE_PROJECT_TOML, &capture_secrets_json());
    for topic in [
        "commit.flag.added",
        "commit.flag.updated",
        "pull-request.flag.added",
        "pull-request.flag.updated",
        "project.edit",
        "git.branch.creation",
    ] {
        let (status, body, request) = deliver(&service, &mut queued, topic).await;
        assert_eq!(status, 202, "{topic}");
        assert!(body["ignored"].as_str().is_some_and(|why| why.contains(topic)), "{topic}: {body}");
        assert!(request.is_none(), "{topic} queued a build");
    }
}

#[tokio::test]
async fn comments_that_do_not_ask_and_closed_prs_are_ignored() {
    let (service, mut queued) = local_service(CAPTURE_PROJECT_TOML, &capture_secrets_json());
    let capture = webhook_capture("pull-request.comment.added");
    let mut envelope: serde_json::Value = serde_json::from_slice(&capture.body).expect("json");
    let comments = envelope["msg"]["pullrequest"]["comments"].as_array_mut().expect("comments");
    comments.last_mut().expect("a comment")["comment"] = "looks good to me".into();
    let body = serde_json::to_vec(&envelope).expect("json");
    let headers = e2e_tests::webhook_headers("pull-request.comment.added", &body, &capture.hook_token);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, response, _, request) =
        send(&service, &mut queued, trigger_request("POST", "/webhook/demo-job", &headers, &body)).await;
    assert_eq!((status, request.is_none()), (202, true), "{response}");
    assert_eq!(response["ignored"], "the new comment does not ask for a rebuild");

    let capture = webhook_capture("pull-request.updated");
    let mut envelope: serde_json::Value = serde_json::from_slice(&capture.body).expect("json");
    envelope["msg"]["pullrequest"]["status"] = "Merged".into();
    let body = serde_json::to_vec(&envelope).expect("json");
    let headers = e2e_tests::webhook_headers("pull-request.updated", &body, &capture.hook_token);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, response, _, request) =
        send(&service, &mut queued, trigger_request("POST", "/webhook/demo-job", &headers, &body)).await;
    assert_eq!((status, request.is_none()), (202, true), "{response}");
    assert_eq!(response["ignored"], "pull request #1 is Merged");
}
