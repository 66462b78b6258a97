//! Logging to stderr. Libraries that would log request contents (s3s logs whole requests,
//! SSE-C keys included, at debug level; h2/hyper log headers at trace) are capped whatever the
//! user asks for. s3s is silenced entirely: it logs every client error at ERROR level, and our
//! own per-request log line says what matters.

use tracing_subscriber::EnvFilter;

const CAPPED_TARGETS: [(&str, &str); 5] = [
    ("s3s", "off"),
    ("hyper", "info"),
    ("h2", "info"),
    ("rustls", "info"),
    ("tokio_rustls", "info"),
];

pub fn init(filter: &str) {
    let mut env_filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("coffer: bad log filter {filter:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    for (target, level) in CAPPED_TARGETS {
        if let Ok(d) = format!("{target}={level}").parse() {
            env_filter = env_filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
