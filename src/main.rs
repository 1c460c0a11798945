//! The `mjpeg-server` command. Everything it does lives in the library; this
//! file only parses flags, sets up logging and maps errors to exit codes.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

use mjpeg_server_cli::config::Cli;

fn main() -> ExitCode {
    // The library's messages name the flags, not its API.
    mjpeg_server::set_option_names(mjpeg_server_cli::config::OPTION_NAMES);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // clap's first paragraph names the problem (a missing flag is
            // named on the line after the first); its usage hint adds noise
            // to what should be one line a user can act on.
            let rendered = e.render().to_string();
            let problem: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            if problem.is_empty() {
                eprintln!("error: bad arguments");
            } else {
                eprintln!("{}", problem.join(" "));
            }
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // With stderr gone (a closed pipe), a failed log write must not
        // turn into a panic: tracing-subscriber reports its own write errors
        // with `eprintln!`, which panics on a broken stderr.
        .log_internal_errors(false)
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        return match runtime.block_on(mjpeg_server_cli::run::check_config(&cli)) {
            Ok(toml) => {
                print!("{toml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match runtime.block_on(mjpeg_server_cli::run::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
