//! bridge-core's metric events ([`bridge_core::metrics`]) as CloudWatch embedded-metric-format
//! lines: one JSON object per line on stdout, its `_aws` member at the top level, which
//! CloudWatch Logs turns into metrics whatever the function's log format.
//!
//! ```json
//! {"_aws":{"Timestamp":1796155200000,"CloudWatchMetrics":[{"Namespace":"PagureCiBridge",
//!   "Dimensions":[["FunctionName"],["FunctionName","Reason"],["FunctionName","Class"]],
//!   "Metrics":[{"Name":"RequestsRefused","Unit":"Count"}]}]},
//!  "FunctionName":"pcb-AcceptFunction","Reason":"invalid_signature","Class":"client",
//!  "RequestsRefused":1,"project":"demo"}
//! ```
//!
//! The request's span fields (`request_id`, `project`, `cause`), when the metric is counted
//! inside one, are kept as plain members: not dimensions, but searchable in Logs Insights.

use std::collections::BTreeMap;
use std::io::Write as _;

use bridge_core::metrics::{self, FUNCTION_NAME, Metric, NAMESPACE};
use serde_json::{Map, Number, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span fields an EMF line keeps.
pub const REQUEST_FIELDS: [&str; 3] = ["request_id", "project", "cause"];

/// One measurement, as a metric event carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub metric: Metric,
    pub value: Number,
    /// Besides `FunctionName`.
    pub dimensions: Vec<(String, String)>,
}

impl Measurement {
    /// The EMF object for this measurement, written by `function_name` at `timestamp_ms`
    /// (milliseconds since the epoch), with `properties` as plain members.
    ///
    /// Only the metric's dimension sets whose dimensions all have a value are declared (a
    /// declared dimension without its member would void the line); `[FunctionName]` when
    /// none has.
    pub fn emf(&self, function_name: &str, timestamp_ms: u64, properties: &BTreeMap<String, String>) -> Value {
        let mut root = Map::new();
        for (name, value) in properties {
            root.insert(name.clone(), Value::from(value.as_str()));
        }
        for (name, value) in &self.dimensions {
            if !value.is_empty() && name != FUNCTION_NAME {
                root.insert(name.clone(), Value::from(value.as_str()));
            }
        }
        root.insert(FUNCTION_NAME.to_owned(), Value::from(function_name));
        let has_value = |name: &str| root.get(name).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
        let mut sets: Vec<&[&str]> =
            self.metric.dimension_sets().iter().copied().filter(|set| set.iter().all(|d| has_value(d))).collect();
        if sets.is_empty() {
            sets.push(&[FUNCTION_NAME]);
        }
        let directive = json!({
            "Namespace": NAMESPACE,
            "Dimensions": sets,
            "Metrics": [{"Name": self.metric.name(), "Unit": self.metric.unit().as_str()}],
        });
        root.insert(self.metric.name().to_owned(), Value::Number(self.value.clone()));
        root.insert("_aws".to_owned(), json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}));
        Value::Object(root)
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// The layer that writes each metric event as one EMF line. Give it the events of
/// [`metrics::TARGET`] and the spans that declare a `request_id` ([`EmfLayer::wants`]).
#[derive(Debug)]
pub struct EmfLayer<W> {
    function_name: String,
    writer: W,
}

impl<W> EmfLayer<W> {
    pub fn new(function_name: impl Into<String>, writer: W) -> Self {
        EmfLayer { function_name: function_name.into(), writer }
    }

    /// What the layer needs to see: metric events, and the request spans whose fields it
    /// copies.
    pub fn wants(metadata: &tracing::Metadata<'_>) -> bool {
        if metadata.is_span() {
            metadata.fields().field("request_id").is_some()
        } else {
            metadata.target() == metrics::TARGET
        }
    }
}

/// A request span's fields, kept in the span's extensions.
#[derive(Debug, Default)]
struct RequestFields(BTreeMap<String, String>);

impl Visit for RequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if REQUEST_FIELDS.contains(&field.name()) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if REQUEST_FIELDS.contains(&field.name()) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

/// A metric event's fields.
#[derive(Debug, Default)]
struct MetricFields {
    metric: Option<String>,
    value: Option<Number>,
    dimensions: Option<String>,
}

impl Visit for MetricFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "value" {
            self.value = Some(value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "value" {
            self.value = Some(value.into());
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "value" {
            self.value = Number::from_f64(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "metric" => self.metric = Some(value.to_owned()),
            "dimensions" => self.dimensions = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "metric" => self.metric = Some(format!("{value:?}")),
            "dimensions" => self.dimensions = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl MetricFields {
    fn measurement(self) -> Option<Measurement> {
        Some(Measurement {
            metric: Metric::from_name(self.metric.as_deref()?)?,
            value: self.value?,
            dimensions: self.dimensions.as_deref().map(metrics::decode_dimensions).unwrap_or_default(),
        })
    }
}

impl<S, W> Layer<S> for EmfLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<RequestFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != metrics::TARGET {
            return;
        }
        let mut fields = MetricFields::default();
        event.record(&mut fields);
        let Some(measurement) = fields.measurement() else { return };
        // The innermost span's value of each field wins.
        let mut properties = BTreeMap::new();
        for span in ctx.event_scope(event).into_iter().flatten() {
            if let Some(fields) = span.extensions().get::<RequestFields>() {
                for (name, value) in &fields.0 {
                    properties.entry(name.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        let mut line = measurement.emf(&self.function_name, now_ms(), &properties).to_string();
        line.push('\n');
        // One write per line: the logs share stdout.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests;
