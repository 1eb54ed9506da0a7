//! The command line: `serve`, `report`, `projects`, `check-config`, parsed by clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// pagure-ci-bridge: run Pagure CI on AWS CodePipeline and CodeBuild.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Human-readable logs instead of JSON lines.
    #[arg(long, global = true)]
    pretty_logs: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
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
        status: Option<bridge_core::forge::FlagStatus>,
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
        #[arg(long, env = "PCB_FLAG_USERNAME", default_value = bridge_core::forge::DEFAULT_FLAG_USERNAME)]
        username: String,
    },
    /// Onboard projects: edit the project registry and the secret of a deployment (with the
    /// PCB_* variables its stack prints) or, with --config, of local mode.
    Projects {
        /// Local mode's configuration file (its [registry] and secrets file). Without it, the
        /// deployment named by PCB_REGISTRY_BUCKET, PCB_SECRET_ID and the other PCB_* variables.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// Where Pagure reaches the bridge (the stack's function URL), for the settings to paste.
        #[arg(long, env = "PCB_BRIDGE_URL", global = true)]
        bridge_url: Option<String>,
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Check a local configuration file and exit.
    CheckConfig {
        #[arg(long, short, env = "PCB_CONFIG", default_value = "examples/local.toml")]
        config: PathBuf,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Add a project (or update its rule): checks it on Pagure, stores the tokens given,
    /// prints what to paste into Pagure's settings.
    Add {
        /// The project key: the Jenkins job name Pagure calls. For a project Pagure names
        /// `namespace/name`, use that (e.g. rpms/python-requests).
        key: String,
        /// The project's Pagure full name, when it differs from the key.
        #[arg(long)]
        project: Option<String>,
        /// The trusted pipeline (default: the deployment's shared one).
        #[arg(long)]
        pipeline: Option<String>,
        /// The untrusted pipeline (default: the deployment's shared one).
        #[arg(long)]
        untrusted_pipeline: Option<String>,
        /// The buildspec path on the default branch.
        #[arg(long)]
        buildspec: Option<String>,
        /// Doors it takes triggers through (comma-separated: jenkins,json,webhook).
        #[arg(long, value_delimiter = ',')]
        triggers: Option<Vec<bridge_core::model::TriggerKind>>,
        /// Do not build pull requests from forks.
        #[arg(long)]
        no_forks: bool,
        /// A committer's PR comment equal to this approves an untrusted PR's head.
        #[arg(long)]
        approval_phrase: Option<String>,
        /// Pagure's APP_URL (default: the deployment's, PCB_PAGURE_URL).
        #[arg(long)]
        pagure_url: Option<String>,
        /// Pagure's GIT_URL_GIT (default: the deployment's, PCB_GIT_URL).
        #[arg(long)]
        git_url: Option<String>,
        /// Post flags with the shared API token of this name (one bot account for many projects).
        #[arg(long)]
        shared_pagure_api_token: Option<String>,
        /// File holding the token of Pagure CI's settings (`-`: standard input).
        #[arg(long)]
        trigger_token_file: Option<PathBuf>,
        /// File holding the key of the "Private Web Hook Key" tab (`-`: standard input).
        #[arg(long)]
        hook_token_file: Option<PathBuf>,
        /// File holding a Pagure API token with commit_flag and pull_request_flag (`-`:
        /// standard input); stored as the shared token when --shared-pagure-api-token is given.
        #[arg(long)]
        pagure_api_token_file: Option<PathBuf>,
        /// Do not call Pagure.
        #[arg(long)]
        skip_pagure_check: bool,
    },
    /// List the rules and inline projects, with what each still lacks.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Which rule routes a project, and what is missing (exit status 1 if anything is).
    Check {
        key: String,
        #[arg(long)]
        skip_pagure_check: bool,
    },
    /// Remove a project's rule and its tokens.
    Remove {
        key: String,
        /// Keep its tokens in the secret.
        #[arg(long)]
        keep_secrets: bool,
    },
}

async fn run_projects(
    config: Option<PathBuf>,
    bridge_url: Option<String>,
    command: ProjectsCommand,
) -> anyhow::Result<bool> {
    use crate::projects;
    let mut target = match &config {
        Some(path) => projects::local(path)?,
        None => projects::deployed(|key| std::env::var(key).ok(), bridge_url.clone()).await?,
    };
    if bridge_url.is_some() {
        target.bridge_url = bridge_url;
    }
    match command {
        ProjectsCommand::Add {
            key,
            project,
            pipeline,
            untrusted_pipeline,
            buildspec,
            triggers,
            no_forks,
            approval_phrase,
            pagure_url,
            git_url,
            shared_pagure_api_token,
            trigger_token_file,
            hook_token_file,
            pagure_api_token_file,
            skip_pagure_check,
        } => {
            let options = projects::AddOptions {
                project,
                pipeline,
                untrusted_pipeline,
                buildspec,
                triggers,
                allow_forks: no_forks.then_some(false),
                approval_phrase,
                pagure_url,
                git_url,
                shared_token_name: shared_pagure_api_token,
                trigger_token_file,
                hook_token_file,
                pagure_api_token_file,
                skip_pagure: skip_pagure_check,
            };
            target.add(&key, options).await.map(|()| true)
        }
        ProjectsCommand::List { json } => target.list(json).await.map(|()| true),
        ProjectsCommand::Check { key, skip_pagure_check } => target.check(&key, skip_pagure_check).await,
        ProjectsCommand::Remove { key, keep_secrets } => target.remove(&key, keep_secrets).await.map(|()| true),
    }
}

/// Runs one command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    crate::init_tracing(cli.pretty_logs);
    // libgit2's timeouts are process-wide and must be set before any thread starts.
    bridge_git::init_libgit2(std::time::Duration::from_secs(10), std::time::Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve { config, listen } => runtime.block_on(crate::run_serve(&config, listen)),
        Command::Report { status, from_codebuild_env: _, comment, url, pagure_url, token_env, username } => {
            let request = crate::ReportRequest { status, comment, url, pagure_url, token_env, username };
            runtime.block_on(crate::run_report(request, std::env::vars().collect()))
        }
        Command::Projects { config, bridge_url, command } => {
            if !runtime.block_on(run_projects(config, bridge_url, command))? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::CheckConfig { config } => {
            let parsed = crate::load_config(&config)?;
            runtime.block_on(crate::build_local(&parsed, &format!("http://{}/", parsed.listen)))?;
            let registry = match &parsed.accept.registry {
                Some(setup) => format!(", registry {:?}", setup.location),
                None => String::new(),
            };
            println!(
                "{}: ok ({} inline project(s){registry})",
                config.display(),
                parsed.accept.projects.inline_keys().len()
            );
            Ok(())
        }
    }
}
