use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    pagure_ci_bridge::command_line::run(pagure_ci_bridge::command_line::Cli::parse())
}
