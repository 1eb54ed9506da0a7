//! The Lambdas' logs and metrics, on stdout.
//!
//! Logs are set up as lambda_runtime's own `tracing::init_default_subscriber` sets them up
//! for Lambda's advanced logging controls:
//! - format: JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON` (the event's fields under
//!   `fields`, the current span's under `span`, every span's under `spans`, so a line inside
//!   a request carries its `request_id`, `project` and `cause`), text otherwise; no time
//!   (CloudWatch adds it) and no target, as the runtime's;
//! - level: `AWS_LAMBDA_LOG_LEVEL` when set (`FATAL` read as `ERROR`): with the JSON format
//!   Lambda drops what is below it anyway. Else `RUST_LOG`'s level, else `INFO`. The
//!   per-target directives of `RUST_LOG` (`aws_smithy_runtime=debug`) apply either way.
//!
//! The runtime's function installs its single formatting layer as the process's subscriber;
//! here the same layer sits next to the metric layer ([`crate::emf`]), which writes each of
//! bridge-core's metric events as an embedded-metric-format line, whatever the log format
//! and level. Metric events are never log lines. One limit is Lambda's: with the JSON log
//! format it filters lines by their `level`, and reads an EMF line (which has none) as
//! INFO, so an `ApplicationLogLevel` of WARN or above would drop the metrics with the logs.

use bridge_core::metrics;
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
use tracing_subscriber::registry::Registry;

use crate::emf::EmfLayer;

/// What the environment asks of the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `AWS_LAMBDA_LOG_FORMAT=JSON`.
    pub json: bool,
    /// The filter's directives (`RUST_LOG` syntax).
    pub directives: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`: the metrics' `FunctionName`.
    pub function_name: String,
}

impl LogSettings {
    /// From the environment (`get` reads a variable).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let json = get("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
        let directives = directives(get("AWS_LAMBDA_LOG_LEVEL").as_deref(), get("RUST_LOG").as_deref());
        let function_name = get("AWS_LAMBDA_FUNCTION_NAME").filter(|n| !n.is_empty()).unwrap_or("unknown".into());
        LogSettings { json, directives, function_name }
    }

    /// The log lines' filter: the directives, `INFO` when they set no level.
    pub fn filter(&self) -> EnvFilter {
        EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).parse_lossy(&self.directives)
    }
}

/// Lambda's application log level as a directive (`None` for a value it never sets).
fn lambda_level(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => return None,
    })
}

/// The directives: `AWS_LAMBDA_LOG_LEVEL` in place of `RUST_LOG`'s own level, if set.
fn directives(lambda_log_level: Option<&str>, rust_log: Option<&str>) -> String {
    let rust_log = rust_log.unwrap_or("");
    match lambda_log_level.and_then(lambda_level) {
        None => rust_log.to_owned(),
        Some(level) => std::iter::once(level)
            .chain(rust_log.split(',').map(str::trim).filter(|d| !d.is_empty() && d.parse::<LevelFilter>().is_err()))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The Lambdas' subscriber: log lines to `logs`, metric lines to `metrics` (both stdout in
/// a function).
pub fn subscriber<L, M>(settings: &LogSettings, logs: L, metric_lines: M) -> impl Subscriber + Send + Sync + 'static
where
    L: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let not_metrics = filter_fn(|metadata| metadata.target() != metrics::TARGET);
    let filter = settings.filter().and(not_metrics);
    let fmt = tracing_subscriber::fmt::layer().with_target(false).without_time().with_ansi(false).with_writer(logs);
    let fmt = if settings.json { fmt.json().with_filter(filter).boxed() } else { fmt.with_filter(filter).boxed() };
    let emf = EmfLayer::new(settings.function_name.clone(), metric_lines).with_filter(filter_fn(EmfLayer::<M>::wants));
    Registry::default().with(fmt).with(emf)
}

/// Installs [`subscriber`] for the process, from its environment, on stdout.
pub fn init() {
    let settings = LogSettings::from_env(|name| std::env::var(name).ok());
    let _ =
        tracing_subscriber::util::SubscriberInitExt::try_init(subscriber(&settings, std::io::stdout, std::io::stdout));
}

#[cfg(test)]
pub(crate) mod tests;
