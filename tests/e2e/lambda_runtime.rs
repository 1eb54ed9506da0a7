//! The three Lambda binaries (`crates/{accept,work,report}`, the code `scripts/package`
//! builds, here built for the host) as processes under a Lambda Runtime API emulator, each
//! with exactly the environment the SAM template gives it (`Globals` and its own
//! `Environment.Variables`, every `Ref`/`Sub`/`GetAtt` resolved against a test stack whose
//! queues, buckets and secret live in moto), driven through the whole path: a function URL
//! event → accept → SQS → work (an SQS event built from the message, as the event source
//! mapping builds it) → the archive in S3 and `StartPipelineExecution` (a fake CodePipeline:
//! moto cannot start executions) → report (CodeBuild and CodePipeline EventBridge events,
//! built from what the template's pipeline would pass CodeBuild) → flags on the fake Pagure.
//!
//! A variable a binary needs that the template does not set (or sets under another name)
//! stops that binary at init, and the test fails with its message; a reference the test's
//! stack cannot answer fails with the reference's name.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use e2e_tests::Moto;
use e2e_tests::fake_pagure::{FakePagure, Token};
use e2e_tests::git_server::demo_repos;
use e2e_tests::lambda::fake_codepipeline::FakeCodePipeline;
use e2e_tests::lambda::runtime_api::{ACCOUNT, Function, REGION};
use e2e_tests::lambda::stack::{TestStack, configure_project, function_url_event, lambda_binaries, sam_template};
use serde_json::{Value, json};

const TRIGGER_TOKEN: &str = "LAMBDARUNTIMETRIGGERTOKEN0123456789";
const PAGURE_API_TOKEN: &str = "LAMBDARUNTIMEPAGUREAPITOKEN0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The SQS event the event source mapping would give the work function for these messages.
fn sqs_event(queue_arn: &str, messages: &[aws_sdk_sqs::types::Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), Value::from(v.as_str())))
                .collect();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"stringValue": v.string_value(), "stringListValues": [], "binaryListValues": [], "dataType": v.data_type()}),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                "attributes": attributes, "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(), "md5OfMessageAttributes": m.md5_of_message_attributes(),
                "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION
            })
        })
        .collect();
    json!({"Records": records})
}

/// A "CodeBuild Build State Change" event for a build of `project` started by `pipeline`:
/// AWS's own event (the fixture) with this build's names, status and variables.
fn codebuild_event(project: &str, build_uuid: &str, pipeline: &str, status: &str, variables: &[Value]) -> Value {
    let path = e2e_tests::root().join("tests/fixtures/events/codebuild-build-state-change.json");
    let mut event: Value = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture json");
    let build_arn = format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{project}:{build_uuid}");
    event["id"] = json!(uuid_v4());
    event["region"] = json!(REGION);
    event["account"] = json!(ACCOUNT);
    event["resources"] = json!([build_arn]);
    let detail = &mut event["detail"];
    detail["build-status"] = json!(status);
    detail["project-name"] = json!(project);
    detail["build-id"] = json!(build_arn);
    detail["additional-information"]["environment"]["environment-variables"] = json!(variables);
    detail["additional-information"]["initiator"] = json!(format!("codepipeline/{pipeline}"));
    if status == "IN_PROGRESS" {
        detail["current-phase"] = json!("PROVISIONING");
        detail["additional-information"]["build-complete"] = json!(false);
        detail["additional-information"]["phases"].as_array_mut().expect("phases").truncate(2);
    }
    event
}

fn pipeline_event(pipeline: &str, execution_id: &str, state: &str) -> Value {
    json!({
        "version": "0", "id": uuid_v4(), "detail-type": "CodePipeline Pipeline Execution State Change",
        "source": "aws.codepipeline", "account": ACCOUNT, "time": "2026-12-01T20:02:00Z", "region": REGION,
        "resources": [format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{pipeline}")],
        "detail": {"pipeline": pipeline, "execution-id": execution_id, "state": state, "version": 1,
                   "execution-trigger": {"trigger-type": "StartPipelineExecution", "trigger-detail": "work"}}
    })
}

/// The first line of `function`'s output that `wanted` picks (JSON lines only), waiting a
/// little for its output readers.
async fn line_of(function: &Function, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found =
            function.lines().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|line| wanted(line));
        if let Some(line) = found {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: no {what} in its output:\n{}",
            function.spec.name,
            function.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An embedded-metric-format line of `metric`: `_aws` at the top level, the metric's value
/// beside it.
fn is_metric(line: &Value, metric: &str) -> bool {
    line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == metric && line[metric].is_number()
}

/// Whether a JSON log line was written inside the request's span (the runtime's JSON format
/// lists the spans a line is in under `spans`).
fn in_request_span(line: &Value, stage: &str, request_id: &str) -> bool {
    line["spans"].as_array().into_iter().flatten().any(|span| span["name"] == stage && span["request_id"] == request_id)
}

/// A bad token on the JSON trigger: refused, and counted under its reason and class.
async fn refused_trigger(accept: &mut Function, trigger: &Value) -> Value {
    let response = accept
        .invoke(&function_url_event(
            "POST",
            "/trigger/demo",
            &[("authorization", "token not-the-trigger-token"), ("content-type", "application/json")],
            &trigger.to_string(),
        ))
        .await;
    assert_eq!(response["statusCode"], 401, "{response}");
    let refused = line_of(accept, "RequestsRefused metric", |l| is_metric(l, "RequestsRefused")).await;
    assert_eq!(refused["FunctionName"].as_str(), Some(accept.spec.name.as_str()), "{refused}");
    assert_eq!((refused["Reason"].as_str(), refused["Class"].as_str()), (Some("invalid_token"), Some("client")));
    assert_eq!(
        refused["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["FunctionName"], ["FunctionName", "Reason"], ["FunctionName", "Class"]]),
        "{refused}"
    );
    refused
}

fn secret_json() -> String {
    json!({"projects": {"demo": {"trigger_token": TRIGGER_TOKEN, "pagure_api_token": PAGURE_API_TOKEN}}}).to_string()
}

async fn pagure() -> FakePagure {
    let pagure = FakePagure::start().await;
    pagure.add_project("demo");
    pagure.add_token(
        PAGURE_API_TOKEN,
        Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false },
    );
    pagure
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packaged_functions_run_the_whole_path_with_the_templates_environment() {
    let binaries = tokio::task::spawn_blocking(|| lambda_binaries(false));
    let moto = Moto::start();
    let repos = demo_repos().await;
    let pagure = pagure().await;
    binaries.await.expect("build");

    let (template, registry) = configure_project(sam_template(), &pagure.url, &repos.server.base).await;
    let mut stack = TestStack::create(&template, &moto, &secret_json()).await;
    let codepipeline = FakeCodePipeline::start(stack.pipelines(&template)).await;
    let mut specs = BTreeMap::new();
    for binary in ["accept", "work", "report"] {
        let spec = stack.function(&template, binary, &codepipeline.endpoint).unwrap_or_else(|e| panic!("{e}"));
        specs.insert(binary, spec);
    }
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    e2e_tests::lambda::stack::put_registry(&moto, &specs["accept"], registry.as_ref()).await;

    let mut accept = Function::start(specs["accept"].clone()).await.expect("accept");
    let mut work = Function::start(specs["work"].clone()).await.expect("work");
    let mut report = Function::start(specs["report"].clone()).await.expect("report");
    for function in [&mut accept, &mut work, &mut report] {
        let init = function.ready(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{}: init {init:?}", function.spec.name);
    }

    // 1. Pagure's JSON trigger through the function URL: 202, one message in the queue.
    let commit = repos.shas["rawhide"].clone();
    let trigger =
        json!({"cause": commit, "repo": repos.server.url("demo.git"), "branch": "rawhide", "branch_to": null});
    let response = accept
        .invoke(&function_url_event(
            "POST",
            "/trigger/demo",
            &[("authorization", &format!("token {TRIGGER_TOKEN}")), ("content-type", "application/json")],
            &trigger.to_string(),
        ))
        .await;
    assert_eq!(response["statusCode"], 202, "{response}");
    let answer: Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("json body");
    assert_eq!(answer["status"], "queued", "{answer}");
    let request_id = answer["request_id"].as_str().expect("request_id").to_owned();

    // Its metric, as an embedded-metric-format line of its own (the template logs JSON), and
    // its log lines inside the request's span.
    assert_eq!(specs["accept"].test_environment.get("AWS_LAMBDA_LOG_FORMAT").map(String::as_str), Some("JSON"));
    let accepted = line_of(&accept, "RequestsAccepted metric", |l| is_metric(l, "RequestsAccepted")).await;
    let directive = &accepted["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "PagureCiBridge", "{accepted}");
    assert_eq!(directive["Dimensions"], json!([["FunctionName"]]), "{accepted}");
    assert_eq!(directive["Metrics"], json!([{"Name": "RequestsAccepted", "Unit": "Count"}]), "{accepted}");
    assert_eq!(accepted["FunctionName"].as_str(), Some(accept.spec.name.as_str()), "{accepted}");
    assert_eq!(accepted["RequestsAccepted"], 1, "{accepted}");
    assert!(accepted["_aws"]["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000), "{accepted}");
    assert_eq!(accepted["request_id"].as_str(), Some(request_id.as_str()), "{accepted}");
    let queued =
        line_of(&accept, "`build request queued` log line", |l| l["fields"]["message"] == "build request queued").await;
    assert_eq!(queued["level"], "INFO", "{queued}");
    assert_eq!(queued["span"]["name"], "accept", "{queued}");
    assert_eq!(queued["span"]["request_id"].as_str(), Some(request_id.as_str()), "{queued}");
    assert_eq!(
        (queued["span"]["project"].as_str(), queued["span"]["cause"].as_str()),
        (Some("demo"), Some(commit.as_str()))
    );
    assert!(queued["fields"].get("request_id").is_none(), "the span carries it: {queued}");
    refused_trigger(&mut accept, &trigger).await;

    let queue_url = specs["accept"].environment["PCB_QUEUE_URL"].clone();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let messages = received.messages().to_vec();
    assert_eq!(messages.len(), 1, "one message queued: {messages:?}");
    let queue_arn = stack
        .resources
        .values()
        .find(|(url, _)| *url == queue_url)
        .map(|(_, attributes)| attributes["Arn"].clone())
        .expect("the accept function's queue is a queue of the template");

    // 2. The work function gets the message as the event source mapping delivers it.
    let response = work.invoke(&sqs_event(&queue_arn, &messages)).await;
    assert_eq!(response, json!({"batchItemFailures": []}), "nothing to retry; work output:\n{}", work.output());
    // The mapping deletes what the function did not report as failed.
    sqs.delete_message()
        .queue_url(&queue_url)
        .receipt_handle(messages[0].receipt_handle().expect("handle"))
        .send()
        .await
        .expect("delete");

    let executions = codepipeline.executions();
    assert_eq!(
        executions.len(),
        1,
        "one pipeline run; refused calls: {:?}; flags: {:?}; work output:\n{}",
        codepipeline.refused(),
        pagure.flags(),
        work.output()
    );
    let execution = &executions[0];
    let pipeline = codepipeline.pipeline(&execution.pipeline);
    // The worker's log lines are inside the record's span.
    let started = line_of(&work, "`pipeline started` log line", |l| l["fields"]["message"] == "pipeline started").await;
    assert!(in_request_span(&started, "work", &request_id), "{started}");
    assert_eq!(execution.variables.get("PAGURE_REQUEST_ID"), Some(&request_id));
    assert_eq!(execution.variables.get("PAGURE_COMMIT"), Some(&commit));
    // The archive is where the pipeline's source action reads it.
    assert_eq!(Some(&pipeline.source_bucket), specs["work"].environment.get("PCB_BUCKET"));
    let object =
        s3.get_object().bucket(&pipeline.source_bucket).key(&execution.source_key).send().await.unwrap_or_else(|e| {
            panic!("the source archive s3://{}/{}: {e:?}", pipeline.source_bucket, execution.source_key)
        });
    let archive = object.body.collect().await.expect("archive").into_bytes();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.to_vec())).expect("a zip");
    let buildspec_path =
        specs["work"].environment.get("PCB_CODEBUILD_BUILDSPEC").cloned().unwrap_or("buildspec.yml".into());
    let mut buildspec = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(&buildspec_path).expect("the injected buildspec"), &mut buildspec)
        .expect("utf-8");
    assert!(buildspec.contains(&format!("PAGURE_COMMIT: \"{commit}\"")), "{buildspec}");
    let flags = pagure.flags();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!((flags[0].commit.as_str(), flags[0].status.as_str()), (commit.as_str(), "pending"), "{flags:?}");

    // 3. CodeBuild runs with the variables the template's build action passes it.
    let variables = execution.build_environment(&pipeline);
    let build_uuid = uuid_v4();
    let event = codebuild_event(&pipeline.build_project, &build_uuid, &pipeline.name, "IN_PROGRESS", &variables);
    let response = report.invoke(&event).await;
    assert_eq!(response["outcome"], "posted", "{response}");
    // Counted inside the event's span, once correlated with its request.
    let posted = line_of(&report, "FlagsPosted metric", |l| is_metric(l, "FlagsPosted")).await;
    assert_eq!(posted["FunctionName"].as_str(), Some(report.spec.name.as_str()), "{posted}");
    assert_eq!(posted["request_id"].as_str(), Some(request_id.as_str()), "{posted}");
    let event = codebuild_event(&pipeline.build_project, &build_uuid, &pipeline.name, "SUCCEEDED", &variables);
    let response = report.invoke(&event).await;
    assert_eq!(
        (response["outcome"].as_str(), response["status"].as_str()),
        (Some("posted"), Some("success")),
        "{response}"
    );
    let flags = pagure.flags();
    assert_eq!(flags.len(), 1, "the same flag, updated: {flags:?}");
    assert_eq!(flags[0].status, "success");
    assert!(flags[0].url.contains(&format!("/projects/{}/build/", pipeline.build_project)), "{}", flags[0].url);

    // 4. The pipeline's own end: CodeBuild ran, so its events own the flag.
    codepipeline.build_ran(&execution.id, &format!("{}:{build_uuid}", pipeline.build_project));
    let response = report.invoke(&pipeline_event(&pipeline.name, &execution.id, "SUCCEEDED")).await;
    assert_eq!(response["outcome"], "ignored", "{response}");
    assert_eq!(pagure.flags()[0].status, "success");

    // With the text log format, the metrics are the same EMF lines.
    let mut text = specs["accept"].clone();
    text.test_environment.insert("AWS_LAMBDA_LOG_FORMAT".into(), "Text".into());
    let mut accept_text = Function::start(text).await.expect("accept (text logs)");
    accept_text.ready(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
    refused_trigger(&mut accept_text, &trigger).await;
    let refusal = accept_text.lines().into_iter().find(|l| l.contains("trigger refused")).expect("a refusal log line");
    assert!(serde_json::from_str::<Value>(&refusal).is_err(), "a text line: {refusal}");

    for function in [accept, accept_text, work, report] {
        function.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_the_template_lacks_or_a_reference_it_cannot_resolve_fails() {
    let binaries = tokio::task::spawn_blocking(|| lambda_binaries(false));
    let moto = Moto::start();
    binaries.await.expect("build");
    let (template, _) =
        configure_project(sam_template(), "https://pagure.example.org/", "https://pagure.example.org").await;
    let accept_id = template.function_of_binary("accept").expect("accept function");

    // The template without the queue variable: the binary stops at init and says why.
    let mut broken = template.clone();
    let variables = broken
        .json
        .pointer_mut(&format!("/Resources/{accept_id}/Properties/Environment/Variables"))
        .expect("variables");
    variables.as_object_mut().expect("mapping").remove("PCB_QUEUE_URL").expect("the template sets PCB_QUEUE_URL");
    let mut stack = TestStack::create(&broken, &moto, &secret_json()).await;
    let spec = stack.function(&broken, "accept", "http://127.0.0.1:9").expect("spec");
    let mut accept = Function::start(spec).await.expect("start");
    let error = accept.ready(Duration::from_secs(10)).await.expect_err("init must fail");
    assert!(error.contains("PCB_QUEUE_URL"), "{error}");

    // A reference to a resource the template does not have.
    let mut renamed = template.clone();
    renamed.json.pointer_mut(&format!("/Resources/{accept_id}/Properties/Environment/Variables")).expect("variables")
        ["PCB_QUEUE_URL"] = json!({"Ref": "RenamedQueue"});
    let error = stack.function(&renamed, "accept", "http://127.0.0.1:9").expect_err("unknown reference");
    assert!(error.contains("RenamedQueue") && error.contains("PCB_QUEUE_URL"), "{error}");
}
