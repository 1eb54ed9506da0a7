//! The sweep with the real aws-sdk-s3 against moto (markers listed with ListObjectsV2,
//! archive metadata read with HeadObject, `.settled` markers written) and the fake Pagure;
//! CodePipeline and CodeBuild answers come from core's in-memory lookup (moto has no real
//! executions). The schedule event goes through the report Lambda's handler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_aws::{Encryption, S3Store};
use bridge_core::config::LocalConfig;
use bridge_core::forge::Forge;
use bridge_core::forge::{FlagStatus, RetryPolicy};
use bridge_core::ports::{
    ArtifactMetadata, ArtifactStore, BuildAction, ExecutionState, InMemoryPipelines, SecretsDocument,
};
use bridge_core::report::{CodeBuildChange, FlagSubject, ReportService, flag_uid};
use bridge_core::sweep::{SettlementMarkers, SweepSettings, Sweeper};
use bridge_local::StaticSecrets;
use bridge_pagure::PagureClient;
use bridge_pagure::PagureForge;
use e2e_tests::fake_pagure::{FakePagure, Token};
use e2e_tests::{Moto, temp_dir};
use serde_json::json;

const TOKEN: &str = "SWEEPAPITOKEN0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCD";
const SHA: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
const BUCKET: &str = "artifacts";

fn schedule_event() -> serde_json::Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-01T12:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/pcb-sweep"],
        "detail": {}
    })
}

fn variables(request_id: &str) -> BTreeMap<String, String> {
    [
        ("PAGURE_REQUEST_ID", request_id),
        ("PAGURE_PROJECT", "demo"),
        ("PAGURE_REPO", "https://pagure.example.org/demo.git"),
        ("PAGURE_CAUSE", SHA),
        ("PAGURE_COMMIT", SHA),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn execution(status: &str, request_id: &str, build: Option<&str>) -> ExecutionState {
    ExecutionState {
        status: status.into(),
        summary: None,
        variables: variables(request_id),
        region: "eu-west-1".into(),
        builds: build
            .map(|id| BuildAction {
                stage: "Build".into(),
                action: "CodeBuild".into(),
                status: if status == "InProgress" { "InProgress" } else { "Succeeded" }.into(),
                build_id: Some(id.into()),
                message: None,
            })
            .into_iter()
            .collect(),
    }
}

fn succeeded_build(id: &str, request_id: &str) -> CodeBuildChange {
    CodeBuildChange {
        region: "eu-west-1".into(),
        account: "123456789012".into(),
        project_name: "demo-build".into(),
        build_id: format!("arn:aws:codebuild:eu-west-1:123456789012:build/{id}"),
        build_number: Some(3),
        status: "SUCCEEDED".into(),
        phases: vec![],
        initiator: Some("codepipeline/demo-ci".into()),
        variables: variables(request_id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_settles_pending_flags_once_from_s3_markers() {
    let moto = Moto::start();
    let s3 = moto.versioned_bucket(BUCKET).await;
    let store = S3Store::new(s3.clone(), BUCKET, Encryption::S3Managed);
    let fake = FakePagure::start().await;
    fake.add_project("demo");
    fake.add_token(TOKEN, Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false });
    let config = LocalConfig::parse(
        &format!(
            r#"
[secrets]
file = "unused.json"
[projects.demo]
pagure_url = "{url}"
git_url = "https://pagure.example.org"
project = "demo"
pipeline = "demo-ci"
"#,
            url = fake.url
        ),
        std::path::Path::new("/"),
    )
    .expect("config");
    let secrets = StaticSecrets::new(
        SecretsDocument::parse(&format!(r#"{{"projects": {{"demo": {{"pagure_api_token": "{TOKEN}"}}}}}}"#))
            .expect("secrets"),
    );
    let retry = RetryPolicy { attempts: 2, timeout: Duration::from_secs(5), ..RetryPolicy::default() };
    let flags = PagureForge::new(
        PagureClient::new(retry).expect("client"),
        config.accept.projects.clone(),
        secrets,
        "AWS CodeBuild".into(),
    );
    // The work stage's reporter: it posts the pending flags.
    let worker_flags = flags.clone();
    let pipelines = Arc::new(InMemoryPipelines::default());
    let service = ReportService::new(config.accept.clone(), flags, pipelines.clone())
        .with_settlements(SettlementMarkers::new(store.clone(), "sources"));
    let settings =
        SweepSettings { after: Duration::ZERO, page_size: 2, ..SweepSettings::new("sources", Duration::ZERO) };
    let sweeper = Sweeper::new(store.clone(), settings);

    // Four requests the work stage started, each with its pending flag, marker and archive.
    let dir = temp_dir("sweep");
    let requests: Vec<String> = (1..=4).map(|n| format!("{n:032x}")).collect();
    for (n, request_id) in requests.iter().enumerate() {
        let execution_id = format!("e{}", n + 1);
        let project = bridge_core::model::ProjectRef {
            key: "demo".into(),
            namespace: None,
            name: "demo".into(),
            fork_user: None,
        };
        let cause = bridge_core::model::Cause::Commit { sha: SHA.into() };
        let subject = FlagSubject { project: &project, cause: &cause, commit: Some(SHA), request_id };
        let pending = subject.update(
            FlagStatus::Pending,
            "Queued for AWS CodePipeline",
            format!("https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/demo-ci/executions/{execution_id}"),
            None,
        );
        worker_flags.report(&pending).await.expect("pending flag");
        let base = format!("sources/demo/{request_id}");
        let zip = dir.join(format!("{request_id}.zip"));
        std::fs::write(&zip, b"PK\x05\x06").expect("zip");
        let metadata = ArtifactMetadata {
            entries: vec![
                ("pagure-project".into(), "demo".into()),
                ("pagure-repo".into(), "https://pagure.example.org/demo.git".into()),
                ("pagure-cause".into(), SHA.into()),
                ("pagure-commit".into(), SHA.into()),
                ("pagure-request-id".into(), request_id.clone()),
            ],
            revision_summary: "demo push to main".into(),
        };
        store.put_archive(&format!("{base}.zip"), &zip, &metadata).await.expect("archive");
        store.put_marker(&format!("{base}.started"), &execution_id).await.expect("marker");
    }
    // 1: finished, its final event lost. 2: still running. 3: CodePipeline forgot it.
    // 4: finished, and its event came (settled by the event).
    pipelines.set_execution("demo-ci", "e1", execution("Succeeded", &requests[0], Some("demo-build:b1")));
    pipelines.set_build(succeeded_build("demo-build:b1", &requests[0]));
    pipelines.set_execution("demo-ci", "e2", execution("InProgress", &requests[1], Some("demo-build:b2")));
    pipelines.set_execution("demo-ci", "e4", execution("Succeeded", &requests[3], Some("demo-build:b4")));
    let event_build = succeeded_build("demo-build:b4", &requests[3]);
    let mut event: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e2e_tests::root().join("tests/fixtures/events/codebuild-build-state-change.json"))
            .expect("fixture"),
    )
    .expect("fixture");
    event["detail"]["build-status"] = json!("SUCCEEDED");
    event["detail"]["build-id"] = json!(event_build.build_id);
    event["detail"]["additional-information"]["environment"]["environment-variables"] = json!(
        variables(&requests[3])
            .iter()
            .map(|(k, v)| json!({"name": k, "type": "PLAINTEXT", "value": v}))
            .collect::<Vec<_>>()
    );
    let answer = bridge_core::report::invoke::handle(&service, event).await.expect("event");
    assert_eq!(answer["outcome"], "posted", "{answer}");
    let posts_before = fake.posts();

    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = bridge_core::report::invoke::handle_with_sweep(&service, Some(&sweeper), schedule_event(), deadline)
        .await
        .expect("sweep");
    assert_eq!(answer["outcome"], "swept", "{answer}");
    let report = &answer["sweep"];
    assert_eq!(
        (report["due"].as_u64(), report["posted"].as_u64(), report["running"].as_u64(), report["complete"].as_bool()),
        (Some(3), Some(2), Some(1), Some(true)),
        "{answer}"
    );
    assert_eq!(fake.posts(), posts_before + 2, "two final flags posted");

    let flag = |n: usize| {
        let uid = flag_uid(&requests[n]);
        let mut found: Vec<_> = fake.flags().into_iter().filter(|f| f.uid == uid).collect();
        assert_eq!(found.len(), 1, "one flag per request (the pending one updated)");
        found.remove(0)
    };
    let done = flag(0);
    assert_eq!((done.status.as_str(), done.comment.as_str()), ("success", "Build #3 succeeded"));
    assert_eq!((done.project.as_str(), done.commit.as_str()), ("demo", SHA));
    assert!(done.url.contains("/projects/demo-build/build/demo-build%3Ab1/"), "{}", done.url);
    assert_eq!(flag(1).status, "pending", "a running execution stays pending");
    let forgotten = flag(2);
    assert_eq!(forgotten.status, "error");
    assert!(forgotten.comment.contains("no longer knows execution e3"), "{}", forgotten.comment);
    assert_eq!(flag(3).status, "success");

    // The ledger is in the bucket, beside the markers.
    let listed = s3.list_objects_v2().bucket(BUCKET).prefix("sources/demo/").send().await.expect("list");
    let settled: Vec<&str> =
        listed.contents().iter().filter_map(|o| o.key()).filter(|k| k.ends_with(".settled")).collect();
    assert_eq!(settled.len(), 3, "{settled:?}");

    // The next run posts nothing: what is settled stays settled, the running one is asked again.
    let answer = bridge_core::report::invoke::handle_with_sweep(&service, Some(&sweeper), schedule_event(), deadline)
        .await
        .expect("sweep");
    assert_eq!((answer["sweep"]["due"].as_u64(), answer["sweep"]["posted"].as_u64()), (Some(1), Some(0)), "{answer}");
    assert_eq!(fake.posts(), posts_before + 2);

    // Without a sweeper (no PCB_BUCKET) a schedule event is answered, not failed.
    let answer = bridge_core::report::invoke::handle(&service, schedule_event()).await.expect("ignored");
    assert_eq!(answer["outcome"], "ignored");
}
