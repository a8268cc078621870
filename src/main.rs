//! The `api-tokens` binary: parse the command line and hand it to the library.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match api_tokens::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as clap prints them.
        Err(e) if !e.use_stderr() => e.exit(),
        // A bad flag: one line, as every other start-up failure (clap's own message spans
        // a paragraph, a usage line and a hint).
        Err(e) => {
            eprintln!("api-tokens: {}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
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
            // One line; no database password can be in it: the drivers never see it, and
            // every message names the database by its masked URL.
            eprintln!("api-tokens: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first paragraph of clap's message, without its "error: " prefix, on one line.
fn one_line(message: &str) -> String {
    let paragraph: Vec<&str> = message
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = paragraph.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text} (see --help)")
}
