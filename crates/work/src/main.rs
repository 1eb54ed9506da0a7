use bridge_core::config::WorkLambdaConfig;
use bridge_lambda::work;

fn main() -> Result<(), bridge_lambda::Error> {
    bridge_lambda::init_tracing();
    // libgit2's timeouts are process-wide: set them before the runtime starts threads.
    work::init_git()?;
    let config = WorkLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let function = work::WorkFunction::new(&config, &aws_config::load_from_env().await)?;
        work::serve(&function).await
    })
}
