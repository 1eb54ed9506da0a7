//! The batch handler on the worker's fakes: each record in its span, and the records given
//! up here counted here.

use std::path::Path;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bridge_core::config::LocalConfig;
use bridge_core::fakes::{FakeForge, FakePipelines, FakeSecrets, FakeSource, FakeStore};
use bridge_core::model::{BuildRequest, TriggerKind};
use bridge_core::trigger::{RawTrigger, normalise};
use bridge_core::work::{WorkSettings, Worker};
use serde_json::Value;

use super::handle_batch;
use crate::logging::tests::{run, settings};

const CONFIG: &str = r#"
[secrets]
file = "unused.json"
[work]
artifacts_dir = "unused"
[projects.demo]
pagure_url = "https://pagure.example.org/"
git_url = "https://pagure.example.org"
project = "demo"
pipeline = "demo-ci"
"#;

const PUSHED: &str = "d2085936e8b068ce55bd07cbf3cf794b8fe7a996";

type FakeWorker = Worker<FakeSource, FakeStore, FakePipelines, FakeForge, FakeSecrets>;

fn worker_and_push() -> (FakeWorker, BuildRequest) {
    let config = LocalConfig::parse(CONFIG, Path::new("/")).expect("config");
    let raw = RawTrigger {
        cause: PUSHED.into(),
        repo: "https://pagure.example.org/demo.git".into(),
        branch: "rawhide".into(),
        branch_to: None,
        rebuild: false,
    };
    let request =
        normalise(&config.accept.projects["demo"], raw, TriggerKind::Jenkins, time::OffsetDateTime::now_utc())
            .expect("request");
    let worker = Worker::new(
        config.accept.clone(),
        WorkSettings::default(),
        FakeSource::default(),
        FakeStore::default(),
        FakePipelines::default(),
        FakeForge::default(),
        FakeSecrets::default(),
    );
    (worker, request)
}

fn message(id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.into());
    message.body = Some(body.into());
    message.attributes.insert("ApproximateReceiveCount".into(), receive_count.to_string());
    message
}

/// The batch through the handler under the Lambdas' subscriber (JSON logs): the ids to
/// retry, the log lines, the metric lines.
fn batch(worker: &FakeWorker, messages: Vec<SqsMessage>) -> (Vec<String>, Vec<Value>, Vec<Value>) {
    let settings = settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_FUNCTION_NAME", "work")]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut event = SqsEvent::default();
    event.records = messages;
    let mut retried = Vec::new();
    let (logs, metric_lines) = run(&settings, || {
        let response = runtime.block_on(handle_batch(worker, event, 3));
        retried = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    });
    let json = |lines: Vec<String>| -> Vec<Value> {
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    };
    (retried, json(logs), json(metric_lines))
}

fn logged<'a>(logs: &'a [Value], message: &str) -> &'a Value {
    logs.iter().find(|l| l["fields"]["message"] == message).unwrap_or_else(|| panic!("no `{message}` in {logs:#?}"))
}

fn failures(metric_lines: &[Value]) -> Vec<&Value> {
    metric_lines.iter().filter(|l| l.get("Failures").is_some()).collect()
}

#[test]
fn each_record_is_handled_in_its_span() {
    let (worker, request) = worker_and_push();
    let (retried, logs, metric_lines) =
        batch(&worker, vec![message("m-1", &request.to_json(), 1), message("m-2", "{\"not\": \"a request\"}", 1)]);
    assert_eq!(retried, ["m-2"]);

    let started = logged(&logs, "pipeline started");
    let span = started["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "work")
        .unwrap_or_else(|| panic!("not in the record's span: {started}"));
    assert_eq!(span["request_id"].as_str(), Some(request.request_id.as_str()), "{started}");
    assert_eq!((span["project"].as_str(), span["cause"].as_str()), (Some("demo"), Some(PUSHED)), "{started}");
    assert_eq!((span["message_id"].as_str(), span["receive_count"].as_u64()), (Some("m-1"), Some(1)), "{started}");

    let unreadable = logged(&logs, "the message is not a build request");
    assert_eq!(unreadable["span"]["message_id"], "m-2", "{unreadable}");
    assert!(unreadable["span"].get("request_id").is_none(), "{unreadable}");
    // Not its last delivery: it comes back, and nothing has failed yet.
    assert!(failures(&metric_lines).is_empty(), "{metric_lines:?}");
}

#[test]
fn a_message_that_is_no_request_fails_for_good_on_its_last_delivery() {
    let (worker, _) = worker_and_push();
    let (retried, _, metric_lines) = batch(&worker, vec![message("m-3", "garbage", 3)]);
    assert_eq!(retried, ["m-3"], "kept, for the dead-letter queue");
    let failures = failures(&metric_lines);
    assert_eq!(failures.len(), 1, "{metric_lines:?}");
    assert_eq!(failures[0]["Class"], "terminal");
    assert_eq!(failures[0]["FunctionName"], "work");
    assert_eq!(
        failures[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["FunctionName", "Class"]])
    );
}
