use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// pagure-ci-bridge: run Pagure CI on AWS CodePipeline and CodeBuild.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Human-readable logs instead of JSON lines.
    #[arg(long, global = true)]
    pretty_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole bridge locally: HTTP server, in-process queue.
    Serve {
        #[arg(long, short, env = "PCB_CONFIG", default_value = "examples/local.toml")]
        config: PathBuf,
        /// Listen here instead of the file's `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check a local configuration file and exit.
    CheckConfig {
        #[arg(long, short, env = "PCB_CONFIG", default_value = "examples/local.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    pagure_ci_bridge::init_tracing(cli.pretty_logs);
    // libgit2's timeouts are process-wide and must be set before any thread starts.
    bridge_git::init_libgit2(std::time::Duration::from_secs(10), std::time::Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve { config, listen } => runtime.block_on(pagure_ci_bridge::run_serve(&config, listen)),
        Command::CheckConfig { config } => {
            let parsed = bridge_core::config::LocalConfig::load(&config)?;
            runtime.block_on(pagure_ci_bridge::build_local(&parsed))?;
            println!("{}: ok ({} project(s))", config.display(), parsed.accept.projects.len());
            Ok(())
        }
    }
}
