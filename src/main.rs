#[tokio::main]
async fn main() -> std::process::ExitCode {
    deskgraph::cli::run(deskgraph::cli::parse()).await
}
