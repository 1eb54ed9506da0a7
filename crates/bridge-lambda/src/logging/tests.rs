use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bridge_core::metrics::{self, Metric};
use serde_json::Value;
use tracing::field::Empty;
use tracing_subscriber::fmt::MakeWriter;

use super::{LogSettings, directives, subscriber};

/// What a writer was given.
#[derive(Clone, Default)]
pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

pub(crate) struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = BufferWriter;

    fn make_writer(&'a self) -> BufferWriter {
        BufferWriter(self.0.clone())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8").lines().map(str::to_owned).collect()
    }
}

pub(crate) fn settings(variables: &[(&str, &str)]) -> LogSettings {
    let variables: BTreeMap<&str, &str> = variables.iter().copied().collect();
    LogSettings::from_env(|name| variables.get(name).map(|v| (*v).to_owned()))
}

/// Runs `f` under the Lambdas' subscriber: the log lines and the metric lines.
pub(crate) fn run(settings: &LogSettings, f: impl FnOnce()) -> (Vec<String>, Vec<String>) {
    let (logs, metric_lines) = (Buffer::default(), Buffer::default());
    tracing::subscriber::with_default(subscriber(settings, logs.clone(), metric_lines.clone()), f);
    (logs.lines(), metric_lines.lines())
}

/// What a request does: a span whose fields come as they are known, a log line and two
/// metrics inside it.
fn a_request() {
    let span = tracing::error_span!("accept", request_id = Empty, project = Empty, cause = Empty);
    let _entered = span.enter();
    span.record("project", "demo");
    span.record("request_id", "0123abcd");
    span.record("cause", "42");
    metrics::count(Metric::RequestsRefused, &[(metrics::REASON, "invalid_signature"), (metrics::CLASS, "client")]);
    metrics::duration(Metric::FetchDuration, std::time::Duration::from_millis(1500));
    tracing::info!(status = 401, "trigger refused");
}

#[test]
fn the_environment_picks_format_level_and_name() {
    let s = settings(&[
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ("AWS_LAMBDA_FUNCTION_NAME", "pcb-AcceptFunction"),
        ("RUST_LOG", "info"),
    ]);
    assert_eq!(s, LogSettings { json: true, directives: "debug".into(), function_name: "pcb-AcceptFunction".into() });
    let s = settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text"), ("RUST_LOG", "warn,aws_smithy_runtime=debug")]);
    assert_eq!(
        s,
        LogSettings {
            json: false,
            directives: "warn,aws_smithy_runtime=debug".into(),
            function_name: "unknown".into()
        }
    );
    assert_eq!(settings(&[("AWS_LAMBDA_LOG_FORMAT", "json")]).directives, "");
    assert_eq!(settings(&[]).filter().to_string(), "info");
}

#[test]
fn lambdas_log_level_replaces_rust_logs_level_and_keeps_its_targets() {
    assert_eq!(
        directives(Some("WARN"), Some("info,aws_config=debug,[accept]=trace")),
        "warn,aws_config=debug,[accept]=trace"
    );
    assert_eq!(directives(Some("FATAL"), None), "error");
    assert_eq!(directives(Some("TRACE"), Some("")), "trace");
    // A value Lambda never sets is ignored, as an unset one.
    assert_eq!(directives(Some("VERBOSE"), Some("debug")), "debug");
    assert_eq!(directives(None, Some("debug")), "debug");
    assert_eq!(directives(None, None), "");
}

#[test]
fn json_log_lines_carry_the_request_span_and_metrics_are_emf_lines() {
    let settings = settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_FUNCTION_NAME", "pcb-AcceptFunction")]);
    let before = crate::emf::now_ms();
    let (logs, metric_lines) = run(&settings, a_request);
    let after = crate::emf::now_ms();

    assert_eq!(logs.len(), 1, "metric events are not log lines: {logs:?}");
    let line: Value = serde_json::from_str(&logs[0]).expect("a JSON log line");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["message"], "trigger refused");
    assert_eq!(line["span"]["name"], "accept");
    assert_eq!(line["span"]["request_id"], "0123abcd");
    assert_eq!(line["span"]["project"], "demo");
    assert_eq!(line["span"]["cause"], "42");
    assert!(line.get("timestamp").is_none() && line.get("target").is_none(), "{line}");

    assert_eq!(metric_lines.len(), 2, "{metric_lines:?}");
    let refused: Value = serde_json::from_str(&metric_lines[0]).expect("an EMF line");
    let timestamp = refused["_aws"]["Timestamp"].as_u64().expect("a timestamp in milliseconds");
    assert!((before..=after).contains(&timestamp), "{timestamp} not in {before}..={after}");
    let directive = &refused["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "PagureCiBridge");
    assert_eq!(directive["Metrics"][0]["Name"], "RequestsRefused");
    assert_eq!(refused["FunctionName"], "pcb-AcceptFunction");
    assert_eq!((refused["Reason"].as_str(), refused["Class"].as_str()), (Some("invalid_signature"), Some("client")));
    assert_eq!(refused["RequestsRefused"], 1);
    assert_eq!(
        (refused["request_id"].as_str(), refused["project"].as_str(), refused["cause"].as_str()),
        (Some("0123abcd"), Some("demo"), Some("42"))
    );
    let fetch: Value = serde_json::from_str(&metric_lines[1]).expect("an EMF line");
    assert_eq!(fetch["FetchDuration"], 1500.0);
    assert_eq!(fetch["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds");
}

#[test]
fn with_text_logs_and_a_high_level_metrics_are_still_emf_lines() {
    let settings =
        settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text"), ("RUST_LOG", "info"), ("AWS_LAMBDA_FUNCTION_NAME", "work")]);
    let (logs, metric_lines) = run(&settings, a_request);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(serde_json::from_str::<Value>(&logs[0]).is_err(), "a text line: {}", logs[0]);
    assert!(logs[0].contains("trigger refused") && logs[0].contains("request_id=\"0123abcd\""), "{}", logs[0]);
    assert!(!logs[0].contains('\u{1b}'), "no colour codes in CloudWatch: {:?}", logs[0]);
    assert_eq!(metric_lines.len(), 2);

    // Lambda's level above INFO: no log line, the same metric lines.
    let quiet = super::LogSettings { directives: directives(Some("ERROR"), Some("info")), ..settings };
    let (logs, metric_lines) = run(&quiet, a_request);
    assert!(logs.is_empty(), "{logs:?}");
    assert_eq!(metric_lines.len(), 2);
    let refused: Value = serde_json::from_str(&metric_lines[0]).expect("an EMF line");
    assert_eq!((refused["FunctionName"].as_str(), refused["request_id"].as_str()), (Some("work"), Some("0123abcd")));
}

#[test]
fn a_metric_outside_any_request_has_no_request_fields() {
    let settings = settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_FUNCTION_NAME", "report")]);
    let (_, metric_lines) = run(&settings, || {
        let _other = tracing::info_span!("Lambda runtime invoke", requestId = "aws-id").entered();
        metrics::count(Metric::FlagsPosted, &[]);
    });
    let line: Value = serde_json::from_str(&metric_lines[0]).expect("an EMF line");
    assert_eq!(line["FlagsPosted"], 1);
    let members: Vec<&str> = line.as_object().expect("object").keys().map(String::as_str).collect();
    let mut members = members;
    members.sort_unstable();
    assert_eq!(members, ["FlagsPosted", "FunctionName", "_aws"]);
}
