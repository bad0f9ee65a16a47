use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    deskgraph::cli::run(deskgraph::cli::Cli::parse()).await
}
