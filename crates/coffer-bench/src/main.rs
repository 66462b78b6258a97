//! coffer-bench: an S3 load generator fast enough not to be the bottleneck.
//!
//! It talks to any S3 endpoint (path-style, SigV4, HTTPS or HTTP, optional SSE-C) through hyper and rustls,
//! one connection per concurrent request, sending bodies that are slices of one in-memory buffer and
//! discarding response bodies after counting them. See `coffer-bench --help` and docs/benchmarks.md.

mod body;
mod cli;
mod report;
mod s3;
mod stats;
mod transport;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let cfg = match cli::Config::from_args(args) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("coffer-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cfg.threads {
        runtime.worker_threads(n);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffer-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match runtime.block_on(workload::run(cfg.clone())) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coffer-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // Abandoned requests (at the deadline) may still hold connection tasks: do not wait for them.
    runtime.shutdown_background();
    let report = report::build(&cfg, &outcome);
    if cfg.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("coffer-bench: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report::table(&report));
    }
    if report.total.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
