//! The `api-tokens` binary: parse the command line and hand it to the library.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = api_tokens::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("api-tokens: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(api_tokens::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The database password is hidden from errors too, whatever library wrote them.
            eprintln!(
                "api-tokens: {}",
                api_tokens::telemetry::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
