//! The AWS Lambda side of pagure-ci-bridge: each function's event (a function URL request, an
//! SQS batch, an EventBridge event) translated for bridge-core's stages, and each function
//! assembled once, in `main`, from its configuration and the AWS clients (`bridge-aws`),
//! with Pagure (`bridge-pagure`) as its forge and git (`bridge-git`) as its source.
//!
//! The three binaries (`crates/accept`, `crates/work`, `crates/report`) are a few lines
//! each around [`accept`], [`work`] and [`report`].

pub mod accept;
pub mod emf;
pub mod logging;
pub mod report;
pub mod work;

/// What a function's `main` may fail with (the runtime's own boxed error).
pub type Error = lambda_runtime::Error;

/// The Lambdas' logs (Lambda's advanced logging controls: `AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`, `RUST_LOG`) and metric lines, on stdout: see [`logging`].
pub fn init_tracing() {
    logging::init();
}
