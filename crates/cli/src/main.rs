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
    /// Post a flag from inside a build (for projects without the report Lambda): run it in
    /// the buildspec's `post_build` `finally` block. Reads the PAGURE_* variables the bridge
    /// injected and CodeBuild's CODEBUILD_* ones; the flag is the one the bridge posted.
    Report {
        /// pending, success, failure, error or canceled.
        #[arg(long, required_unless_present = "from_codebuild_env")]
        status: Option<bridge_core::pagure::FlagStatus>,
        /// Take the status from CODEBUILD_BUILD_SUCCEEDING (1: success, 0: failure).
        #[arg(long, conflicts_with = "status")]
        from_codebuild_env: bool,
        /// The flag's comment (default: "Build #<n> succeeded", and so on).
        #[arg(long)]
        comment: Option<String>,
        /// The flag's link (default: this build's CodeBuild console page).
        #[arg(long)]
        url: Option<String>,
        /// Pagure's APP_URL, e.g. https://pagure.io/.
        #[arg(long, env = "PAGURE_URL")]
        pagure_url: String,
        /// The environment variable holding the Pagure API token (filled by the buildspec's
        /// `secrets-manager` block). The token is never taken on the command line.
        #[arg(long, default_value = "PAGURE_API_TOKEN")]
        token_env: String,
        /// The flag's name on Pagure.
        #[arg(long, env = "PCB_FLAG_USERNAME", default_value = bridge_core::report::DEFAULT_FLAG_USERNAME)]
        username: String,
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
        Command::Report { status, from_codebuild_env: _, comment, url, pagure_url, token_env, username } => {
            let request = pagure_ci_bridge::ReportRequest { status, comment, url, pagure_url, token_env, username };
            runtime.block_on(pagure_ci_bridge::run_report(request, std::env::vars().collect()))
        }
        Command::CheckConfig { config } => {
            let parsed = bridge_core::config::LocalConfig::load(&config)?;
            runtime.block_on(pagure_ci_bridge::build_local(&parsed, &format!("http://{}/", parsed.listen)))?;
            println!("{}: ok ({} project(s))", config.display(), parsed.accept.projects.len());
            Ok(())
        }
    }
}
