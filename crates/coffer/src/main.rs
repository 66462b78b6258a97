//! `coffer`: the binary. Parses the command line, environment and config file, prepares the
//! data directory (TLS material, root credentials), and runs the server.

mod admin_cli;
mod chunk_guard;
mod config;
mod credentials;
mod dev_cli;
mod drain;
mod form_prelude;
mod logging;
mod server;
mod tls;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = config::Cli::parse();
    let args = match cli.command {
        Some(config::Command::Server(args)) => args,
        Some(config::Command::Admin(args)) => return admin_cli::run(args),
        Some(config::Command::Dev(args)) => return dev_cli::run(args),
        None => cli.server,
    };
    let settings = match config::Settings::resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("coffer: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coffer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("coffer: {e}");
            ExitCode::FAILURE
        }
    }
}
