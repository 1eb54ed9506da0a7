//! The work Lambda's timing (issue 13, section 3): each record bounded by what is left of
//! the invocation, records not started or cut short returned before the deadline, transient
//! failures retried on the doubling schedule through `ChangeMessageVisibility` (the real SQS
//! client against moto), and the rebuild rule: an identical request accepted after the
//! earlier build's pipeline started builds again; one accepted before is merged, visibly.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use bridge_core::config::{LocalConfig, RetrySchedule};
use bridge_core::fakes::{FakeForge, FakePipelines};
use bridge_core::forge::FlagStatus;
use bridge_core::model::BuildRequest;
use bridge_core::ports::Queue;
use bridge_core::work::{Disposition, Ending, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_lambda::work::{BatchSettings, MessageVisibility, Timing};
use bridge_local::{DirectoryStore, StaticSecrets};
use e2e_tests::git_server::{DemoRepos, Fault, demo_repos};
use e2e_tests::temp_dir;
use tokio::time::Instant;

/// `ChangeMessageVisibility` calls, recorded: (receipt handle, wait).
#[derive(Debug, Clone, Default)]
struct Visibility(Arc<Mutex<Vec<(String, Duration)>>>);

impl MessageVisibility for Visibility {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), bridge_core::ports::QueueError> {
        self.0.lock().expect("visibility").push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

type TestWorker = Worker<GitFetcher, DirectoryStore, FakePipelines, FakeForge, StaticSecrets>;

struct Rig {
    config: LocalConfig,
    pipelines: FakePipelines,
    forge: FakeForge,
    worker: TestWorker,
    artifacts: std::path::PathBuf,
}

fn rig(repos: &DemoRepos) -> Rig {
    e2e_tests::libgit2_timeouts();
    let artifacts = temp_dir("timing-artifacts");
    let text = format!(
        "[secrets]\nfile = \"unused.json\"\n[work]\nartifacts_dir = \"{}\"\n[projects.demo]\npagure_url = \"http://127.0.0.1:5600/\"\ngit_url = \"{}\"\nproject = \"demo\"\npipeline = \"demo-ci\"\nallow_insecure_git_url = true\n",
        artifacts.display(),
        repos.server.base
    );
    let config = LocalConfig::parse(&text, Path::new("/")).expect("config");
    let secrets = StaticSecrets::new(
        bridge_core::ports::SecretsDocument::parse(r#"{"projects": {"demo": {"trigger_token": "t"}}}"#)
            .expect("secrets"),
    );
    let (pipelines, forge) = (FakePipelines::default(), FakeForge::default());
    let worker = Worker::new(
        config.accept.clone(),
        WorkSettings::default(),
        GitFetcher::new(temp_dir("timing-scratch")),
        DirectoryStore::new(&artifacts),
        pipelines.clone(),
        forge.clone(),
        secrets,
    );
    Rig { config, pipelines, forge, worker, artifacts }
}

impl Rig {
    /// The comments of the `error` flags posted so far.
    fn error_comments(&self) -> Vec<String> {
        self.forge.errors().into_iter().map(|f| f.comment).collect()
    }

    /// pagure-ci's call for a push of `sha` to `feature`, accepted now.
    fn push(&self, repos: &DemoRepos, sha: &str) -> BuildRequest {
        crate::local_pipeline::build_request(&self.config, "demo", sha, repos.server.url("demo.git"), "feature", None)
    }
}

/// An SQS event of `(message id, receipt handle, body, ApproximateReceiveCount)`.
fn sqs_event(records: &[(&str, &str, String, u32)]) -> SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, handle, body, count)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": handle, "body": body,
                "attributes": {"ApproximateReceiveCount": count.to_string(), "SentTimestamp": "1795291200000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:pcb-builds", "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({"Records": records})).expect("SQS event")
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

/// Short times, so that a test runs in seconds: work ends 1 s before the deadline, flags
/// 0.5 s before it, and a record needs 0.5 s of work time to start.
fn settings(max_receive_count: u32) -> BatchSettings {
    BatchSettings {
        max_receive_count,
        retry: RetrySchedule { first: Duration::from_secs(30), max: Duration::from_secs(900) },
        timing: Timing {
            margin: Duration::from_secs(1),
            reserve: Duration::from_millis(500),
            min_start: Duration::from_millis(500),
            visibility_call: Duration::from_secs(2),
        },
    }
}

/// A git host that never answers holds the first record until its work time ends; it is
/// cut short (a transient failure: retried after the schedule's wait for its delivery
/// count), and the next record, with no time left, is not started and goes back at once.
/// The batch answers before the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_record_is_cut_short_and_the_rest_go_back_at_once_before_the_deadline() {
    let repos = demo_repos().await;
    let rig = rig(&repos);
    repos.server.set_fault(Fault::Hang);
    let hanging = rig.push(&repos, &repos.shas["f4"]);
    let next = rig.push(&repos, &repos.shas["f3"]);
    let visibility = Visibility::default();
    let deadline = Instant::now() + Duration::from_secs(3);
    let response = bridge_lambda::work::handle_batch_until(
        &rig.worker,
        // The later delivery goes first, whatever the batch's order.
        sqs_event(&[("m-next", "rh-next", next.to_json(), 1), ("m-hang", "rh-hang", hanging.to_json(), 3)]),
        &settings(5),
        &visibility,
        Some(deadline),
    )
    .await;
    assert!(Instant::now() < deadline, "answered before the deadline");
    assert_eq!(failed_ids(&response), ["m-hang", "m-next"]);
    assert_eq!(
        *visibility.0.lock().expect("visibility"),
        [("rh-hang".to_owned(), Duration::from_secs(120)), ("rh-next".to_owned(), Duration::ZERO)],
        "the third delivery waits 30 s × 2²; the record not started comes back at once"
    );
    assert!(rig.error_comments().is_empty(), "not the last delivery: nothing reported");
    assert!(rig.pipelines.starts().is_empty());
}

/// On its last delivery, a record cut short is reported (`error` flag) and left to the
/// dead-letter queue; one that gets no time at all on its last delivery is reported too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_deliveries_cut_short_or_not_started_are_reported() {
    let repos = demo_repos().await;
    let rig = rig(&repos);
    repos.server.set_fault(Fault::Hang);
    let hanging = rig.push(&repos, &repos.shas["f4"]);
    let visibility = Visibility::default();
    let response = bridge_lambda::work::handle_batch_until(
        &rig.worker,
        sqs_event(&[("m-hang", "rh-hang", hanging.to_json(), 5)]),
        &settings(5),
        &visibility,
        Some(Instant::now() + Duration::from_secs(3)),
    )
    .await;
    assert_eq!(failed_ids(&response), ["m-hang"], "reported, and on to the dead-letter queue");
    let errors = rig.error_comments();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "the build could not be started after several attempts: {}",
            bridge_core::work::CUT_SHORT
        )),
        "{errors:?}"
    );

    // No work time at all: the last delivery is reported, the first goes back at once.
    let last = rig.push(&repos, &repos.shas["f3"]);
    let first = rig.push(&repos, &repos.shas["f2"]);
    let deadline = Instant::now() + Duration::from_millis(1200);
    let response = bridge_lambda::work::handle_batch_until(
        &rig.worker,
        sqs_event(&[("m-first", "rh-first", first.to_json(), 1), ("m-last", "rh-last", last.to_json(), 5)]),
        &settings(5),
        &visibility,
        Some(deadline),
    )
    .await;
    assert!(Instant::now() < deadline);
    assert_eq!(failed_ids(&response), ["m-last", "m-first"]);
    assert_eq!(
        rig.error_comments()[1],
        "the build could not be started after several attempts: the work function had no time left for it on its last delivery"
    );
    assert_eq!(
        *visibility.0.lock().expect("visibility"),
        [("rh-first".to_owned(), Duration::ZERO)],
        "last deliveries keep the queue's timeout (then the dead-letter queue)"
    );
}

/// The deployed path against moto: the accept side's `SqsQueue` sends the request, the
/// event carries the real receipt handle, the git host fails (HTTP 500: transient), and the
/// work side's `SqsQueue` sets the message's visibility to the schedule's first wait (1 s
/// here) instead of the queue's 1,800 s: it comes back as the second delivery and builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_come_back_from_sqs_after_the_schedules_wait() {
    let repos = demo_repos().await;
    let rig = rig(&repos);
    let moto = e2e_tests::Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("pcb-builds")
        .attributes(QueueAttributeName::VisibilityTimeout, "1800")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let queue = bridge_aws::SqsQueue::new(sqs.clone(), &queue_url);
    let request = rig.push(&repos, &repos.shas["f4"]);
    queue.enqueue(&request).await.expect("sent");
    let receive = |wait: i32| {
        let (sqs, queue_url) = (sqs.clone(), queue_url.clone());
        async move {
            sqs.receive_message()
                .queue_url(queue_url)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default()
        }
    };
    let event = |message: &aws_sdk_sqs::types::Message| {
        let count = message.attributes().expect("attributes")[&MessageSystemAttributeName::ApproximateReceiveCount]
            .parse()
            .expect("count");
        sqs_event(&[(
            message.message_id().expect("id"),
            message.receipt_handle().expect("handle"),
            message.body().expect("body").to_owned(),
            count,
        )])
    };
    let settings = BatchSettings {
        retry: RetrySchedule { first: Duration::from_secs(1), max: Duration::from_secs(900) },
        ..settings(5)
    };

    let first = receive(0).await;
    assert_eq!(first.len(), 1);
    repos.server.set_fault(Fault::Status(500));
    let response = bridge_lambda::work::handle_batch_until(
        &rig.worker,
        event(&first[0]),
        &settings,
        &Some(queue.clone()),
        Some(Instant::now() + Duration::from_secs(60)),
    )
    .await;
    assert_eq!(failed_ids(&response), [first[0].message_id().expect("id")]);
    repos.server.set_fault(Fault::None);
    // Without the visibility change it would stay hidden for 1,800 s.
    let again = receive(10).await;
    assert_eq!(again.len(), 1, "back after about a second");
    assert_eq!(again[0].attributes().expect("attributes")[&MessageSystemAttributeName::ApproximateReceiveCount], "2");
    let response = bridge_lambda::work::handle_batch_until(
        &rig.worker,
        event(&again[0]),
        &settings,
        &Some(queue.clone()),
        Some(Instant::now() + Duration::from_secs(60)),
    )
    .await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    assert_eq!(rig.pipelines.starts().len(), 1);

    // The adapter itself: visibility 0 brings a message back at once; a stale receipt
    // handle is an error (logged by the batch, which then leaves the queue's timeout).
    queue.enqueue(&rig.push(&repos, &repos.shas["f3"])).await.expect("sent");
    let received = receive(0).await;
    assert_eq!(received.len(), 1);
    assert!(receive(0).await.is_empty(), "hidden for the queue's 1,800 s");
    let handle = received[0].receipt_handle().expect("handle");
    queue.change_visibility(handle, Duration::ZERO).await.expect("changed");
    assert_eq!(receive(0).await.len(), 1, "visible again at once");
    let error = queue.change_visibility("not-a-receipt-handle", Duration::ZERO).await.expect_err("refused");
    assert!(error.to_string().contains("ReceiptHandleIsInvalid"), "{error}");
}

/// The rebuild rule. pagure-ci's "rerun CI" is the first trigger's call again: once the
/// first build's pipeline started, the same call builds again. A copy accepted before that
/// start (the same push through two doors, a burst) is merged into it, and the merge is
/// logged and left as `<request id>.merged` beside the build's markers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_the_pipeline_started_builds_a_copy_from_before_is_merged() {
    let repos = demo_repos().await;
    let rig = rig(&repos);
    let first = rig.push(&repos, &repos.shas["f4"]);
    let copy = rig.push(&repos, &repos.shas["f4"]);
    assert_eq!(first.idempotency_key, copy.idempotency_key, "the same call");
    assert!(matches!(rig.worker.handle(&first, false).await, Disposition::Done(Ending::Started { .. })));
    // Accepted before the first started, handled after: merged.
    assert_eq!(
        rig.worker.handle(&copy, false).await,
        Disposition::Done(Ending::Duplicate { of: first.request_id.clone() })
    );
    let merged = rig.artifacts.join(format!("sources/demo/{}.merged", copy.request_id));
    let marker = std::fs::read_to_string(&merged).expect("merge marker");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&marker).expect("json")["merged_into"],
        first.request_id.as_str()
    );
    // The rerun, accepted after the start (within the dedupe window): builds. The claim keeps
    // milliseconds, and a request accepted in the start's own millisecond counts as before it:
    // the rerun is made a few milliseconds later, as any real rerun is.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let rerun = rig.push(&repos, &repos.shas["f4"]);
    assert!(matches!(rig.worker.handle(&rerun, false).await, Disposition::Done(Ending::Started { .. })));
    assert_eq!(rig.pipelines.starts().len(), 2);
    // And the claim says which request holds the build now, and since when it runs.
    let claim = std::fs::read_to_string(rig.artifacts.join(format!("sources/demo/claims/{}", rerun.idempotency_key)))
        .expect("claim");
    let claim: serde_json::Value = serde_json::from_str(&claim).expect("json");
    assert_eq!(claim["request_id"], rerun.request_id.as_str());
    assert!(claim["started_ms"].as_i64().is_some(), "{claim}");
}

/// A pipeline that failed at once may have its final flag (and `.settled` marker) before the
/// work stage posts "queued": that late pending flag is not posted over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_already_settled_gets_no_late_pending_flag() {
    let repos = demo_repos().await;
    let settled_rig = rig(&repos);
    let settled = settled_rig.push(&repos, &repos.shas["f4"]);
    let marker = settled_rig.artifacts.join(format!("sources/demo/{}.settled", settled.request_id));
    std::fs::create_dir_all(marker.parent().expect("folder")).expect("folder");
    std::fs::write(&marker, r#"{"status": "error"}"#).expect("settled marker");
    assert!(matches!(settled_rig.worker.handle(&settled, false).await, Disposition::Done(Ending::Started { .. })));
    assert!(settled_rig.forge.flags().is_empty(), "no pending flag over a final one");
    // The control: the same request, not settled, gets its pending flag.
    let control = rig(&repos);
    let request = control.push(&repos, &repos.shas["f4"]);
    assert!(matches!(control.worker.handle(&request, false).await, Disposition::Done(Ending::Started { .. })));
    let flags = control.forge.flags();
    assert_eq!(flags.iter().map(|f| f.status).collect::<Vec<_>>(), [FlagStatus::Pending]);
}
