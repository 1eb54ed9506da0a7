use bridge_core::config::ReportLambdaConfig;
use bridge_lambda::report;

#[tokio::main]
async fn main() -> Result<(), bridge_lambda::Error> {
    bridge_lambda::init_tracing();
    let config = ReportLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    let function = report::build_service(&config, &aws_config::load_from_env().await)?;
    report::serve(&function).await
}
