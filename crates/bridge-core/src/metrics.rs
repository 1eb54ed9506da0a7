//! The bridge's metrics: what an operator counts and times, and the dimensions each is kept
//! under. The stages only say what happened ([`count`], [`duration`]); each is a `tracing`
//! event on the [`TARGET`] target, so core does no IO for it. What becomes of the event is
//! the process's choice: the Lambdas write it as a CloudWatch embedded-metric-format line
//! (`bridge-lambda`), local mode logs it like any other event.
//!
//! The contract the templates' alarms depend on: namespace [`NAMESPACE`]; every metric has
//! the dimension `FunctionName` (the function's own name, added by the Lambda side), and the
//! dimension sets of [`Metric::dimension_sets`]. `Reason` is a refusal's stable error code
//! (`invalid_signature`), `Class` is [`class_of_status`]'s `client`/`server` for refusals and
//! [`Retry::as_str`](crate::retry::Retry::as_str)'s `transient`/`terminal` for failures.

use std::time::Duration;

/// The target of every metric event.
pub const TARGET: &str = "bridge_core::metrics";

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "PagureCiBridge";

/// The dimension every metric has: the function's name.
pub const FUNCTION_NAME: &str = "FunctionName";
/// A refusal's stable error code.
pub const REASON: &str = "Reason";
/// `client` or `server` for a refusal, `transient` or `terminal` for a failure.
pub const CLASS: &str = "Class";

/// What the bridge counts and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A trigger became a queued build request.
    RequestsAccepted,
    /// A trigger was answered with an error (dimensions `Reason`, `Class`).
    RequestsRefused,
    /// A pipeline execution was started.
    BuildsStarted,
    /// A request or an event failed (dimension `Class`: `transient` or `terminal`).
    Failures,
    /// The report stage posted a flag.
    FlagsPosted,
    /// Fetching a request's tree.
    FetchDuration,
    /// Writing its source archive.
    ArchiveDuration,
    /// Storing the archive.
    UploadDuration,
}

/// A metric's unit, as CloudWatch spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::RequestsAccepted,
        Metric::RequestsRefused,
        Metric::BuildsStarted,
        Metric::Failures,
        Metric::FlagsPosted,
        Metric::FetchDuration,
        Metric::ArchiveDuration,
        Metric::UploadDuration,
    ];

    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Metric::RequestsAccepted => "RequestsAccepted",
            Metric::RequestsRefused => "RequestsRefused",
            Metric::BuildsStarted => "BuildsStarted",
            Metric::Failures => "Failures",
            Metric::FlagsPosted => "FlagsPosted",
            Metric::FetchDuration => "FetchDuration",
            Metric::ArchiveDuration => "ArchiveDuration",
            Metric::UploadDuration => "UploadDuration",
        }
    }

    /// The metric named `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::FetchDuration | Metric::ArchiveDuration | Metric::UploadDuration => Unit::Milliseconds,
            _ => Unit::Count,
        }
    }

    /// The dimension sets the metric is kept under: an alarm must name one of them exactly.
    pub fn dimension_sets(self) -> &'static [&'static [&'static str]] {
        match self {
            Metric::RequestsRefused => &[&[FUNCTION_NAME], &[FUNCTION_NAME, REASON], &[FUNCTION_NAME, CLASS]],
            Metric::Failures => &[&[FUNCTION_NAME, CLASS]],
            _ => &[&[FUNCTION_NAME]],
        }
    }
}

/// A refusal's class: `server` for a 5xx answer, `client` for anything else.
pub fn class_of_status(status: http::StatusCode) -> &'static str {
    if status.is_server_error() { "server" } else { "client" }
}

/// Adds one to `metric`, under `dimensions` (besides `FunctionName`).
pub fn count(metric: Metric, dimensions: &[(&'static str, &str)]) {
    tracing::info!(
        target: TARGET,
        metric = metric.name(),
        value = 1u64,
        unit = metric.unit().as_str(),
        dimensions = %encode_dimensions(dimensions),
        "metric"
    );
}

/// Records `elapsed`, in milliseconds, as `metric`.
pub fn duration(metric: Metric, elapsed: Duration) {
    tracing::info!(
        target: TARGET,
        metric = metric.name(),
        value = milliseconds(elapsed),
        unit = Unit::Milliseconds.as_str(),
        dimensions = "{}",
        "metric"
    );
}

/// Milliseconds, to the microsecond.
pub fn milliseconds(elapsed: Duration) -> f64 {
    (elapsed.as_micros() as f64) / 1000.0
}

/// The dimensions as one event field: a JSON object of strings.
pub fn encode_dimensions(dimensions: &[(&'static str, &str)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> =
        dimensions.iter().map(|(name, value)| ((*name).to_owned(), serde_json::Value::from(*value))).collect();
    serde_json::Value::Object(object).to_string()
}

/// The event field [`encode_dimensions`] wrote, read back (nothing for anything else).
pub fn decode_dimensions(field: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(field) {
        Ok(serde_json::Value::Object(object)) => {
            object.into_iter().filter_map(|(name, value)| value.as_str().map(|v| (name, v.to_owned()))).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_units_follow_the_contract() {
        for metric in Metric::ALL {
            assert_eq!(Metric::from_name(metric.name()), Some(metric));
            assert!(metric.dimension_sets().iter().all(|set| set.first() == Some(&FUNCTION_NAME)));
        }
        assert_eq!(Metric::from_name("Nope"), None);
        assert_eq!(Metric::FetchDuration.unit(), Unit::Milliseconds);
        assert_eq!(Metric::RequestsRefused.unit().as_str(), "Count");
        assert_eq!(
            Metric::RequestsRefused.dimension_sets(),
            &[&["FunctionName"][..], &["FunctionName", "Reason"], &["FunctionName", "Class"]]
        );
        assert_eq!(Metric::Failures.dimension_sets(), &[&["FunctionName", "Class"][..]]);
    }

    #[test]
    fn dimensions_round_trip_through_the_event_field() {
        let field = encode_dimensions(&[(REASON, "invalid_signature"), (CLASS, "client \"quoted\"")]);
        let mut decoded = decode_dimensions(&field);
        decoded.sort();
        assert_eq!(
            decoded,
            vec![
                ("Class".to_owned(), "client \"quoted\"".to_owned()),
                ("Reason".to_owned(), "invalid_signature".to_owned())
            ]
        );
        assert_eq!(encode_dimensions(&[]), "{}");
        assert!(decode_dimensions("not json").is_empty());
    }

    #[test]
    fn classes_and_milliseconds() {
        assert_eq!(class_of_status(http::StatusCode::UNAUTHORIZED), "client");
        assert_eq!(class_of_status(http::StatusCode::SERVICE_UNAVAILABLE), "server");
        assert_eq!(milliseconds(Duration::from_micros(1_234_567)), 1234.567);
    }
}
