//! The report: one JSON object (`--json`) or a table, built from a run's outcome.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{Config, OpKind, PayloadMode, Stop, human_size};
use crate::stats::OpStats;
use crate::workload::Outcome;

const MIB: f64 = (1u64 << 20) as f64;

#[derive(Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Serialize)]
pub struct OpReport {
    /// Successful ops completed inside the measured window.
    pub ops: u64,
    /// Payload bytes moved inside the window (request bodies for writes, response bodies for reads).
    pub bytes: u64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    /// Milliseconds; null when no op completed in the window.
    pub latency_ms: Option<Latency>,
    /// Failed ops in any phase (warm-up included).
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct Total {
    pub ops: u64,
    pub bytes: u64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    pub errors: u64,
}

#[derive(Serialize)]
pub struct PrepareReport {
    pub objects: u64,
    pub seconds: f64,
}

#[derive(Serialize)]
pub struct ListReport {
    pub prefix: String,
    pub start_after: Option<String>,
    pub delimiter: Option<String>,
    pub max_keys: u32,
    pub min_keys: u32,
}

#[derive(Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub label: Option<String>,
    pub endpoint: String,
    pub tls: bool,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub size: u64,
    pub objects: u64,
    pub concurrency: usize,
    pub mix: BTreeMap<String, u32>,
    pub ssec: bool,
    pub payload: &'static str,
    pub tagged_bodies: bool,
    pub part_size: u64,
    pub range_size: u64,
    /// What each list op asks for (present when the mix has `list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<ListReport>,
    pub warmup_s: f64,
    /// Requested duration (`--duration`), or null with `--ops`.
    pub duration_s: Option<f64>,
    /// Requested op count (`--ops`), or null with `--duration`.
    pub ops_limit: Option<u64>,
    pub prepare: Option<PrepareReport>,
    /// Length of the measured window.
    pub elapsed_s: f64,
    pub ops: BTreeMap<String, OpReport>,
    pub total: Total,
    /// CPU seconds this client used during the window (null where /proc is not readable).
    pub client_cpu_s: Option<f64>,
    /// CPU seconds the `--server-pid` process used during the window.
    pub server_cpu_s: Option<f64>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn op_report(stats: Option<&OpStats>, bytes: u64, secs: f64) -> OpReport {
    let (ops, latency_ms, errors_by_code, error_samples) = match stats {
        Some(s) => {
            let h = &s.latency_us;
            let latency = (s.ops > 0).then(|| Latency {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            });
            (s.ops, latency, s.errors.clone(), s.samples.clone())
        }
        None => (0, None, BTreeMap::new(), BTreeMap::new()),
    };
    OpReport {
        ops,
        bytes,
        ops_per_s: ops as f64 / secs,
        mib_per_s: bytes as f64 / MIB / secs,
        latency_ms,
        errors: errors_by_code.values().sum(),
        errors_by_code,
        error_samples,
    }
}

pub fn build(cfg: &Config, outcome: &Outcome) -> Report {
    let secs = outcome.window.as_secs_f64();
    let ops: BTreeMap<String, OpReport> = cfg
        .mix
        .kinds()
        .map(|k| {
            (
                k.name().to_owned(),
                op_report(outcome.stats.get(k), outcome.bytes[k.index()], secs),
            )
        })
        .collect();
    let total_ops = ops.values().map(|o| o.ops).sum();
    let total_bytes = ops.values().map(|o| o.bytes).sum();
    Report {
        tool: "coffer-bench",
        version: env!("CARGO_PKG_VERSION"),
        label: cfg.label.clone(),
        endpoint: cfg.endpoint.clone(),
        tls: outcome.tls,
        region: cfg.region.clone(),
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        size: cfg.size,
        objects: cfg.objects,
        concurrency: cfg.concurrency,
        mix: cfg
            .mix
            .entries()
            .iter()
            .map(|(k, w)| (k.name().to_owned(), *w))
            .collect(),
        ssec: cfg.ssec_key.is_some(),
        payload: match cfg.payload {
            PayloadMode::Unsigned => "unsigned",
            PayloadMode::Signed => "signed",
        },
        tagged_bodies: cfg.tag_bodies,
        part_size: cfg.part_size,
        range_size: cfg.range_size,
        list: cfg.mix.contains(OpKind::List).then(|| ListReport {
            prefix: cfg.list_prefix.clone(),
            start_after: cfg.list_start_after.clone(),
            delimiter: cfg.list_delimiter.clone(),
            max_keys: cfg.list_max_keys,
            min_keys: cfg.list_min_keys,
        }),
        warmup_s: cfg.warmup.as_secs_f64(),
        duration_s: match cfg.stop {
            Stop::After(d) => Some(d.as_secs_f64()),
            Stop::Ops(_) => None,
        },
        ops_limit: match cfg.stop {
            Stop::After(_) => None,
            Stop::Ops(n) => Some(n),
        },
        prepare: outcome.prepared.as_ref().map(|p| PrepareReport {
            objects: p.objects,
            seconds: p.seconds,
        }),
        elapsed_s: secs,
        total: Total {
            ops: total_ops,
            bytes: total_bytes,
            ops_per_s: total_ops as f64 / secs,
            mib_per_s: total_bytes as f64 / MIB / secs,
            errors: outcome.stats.total_errors(),
        },
        ops,
        client_cpu_s: outcome.client_cpu_s.map(round3),
        server_cpu_s: outcome.server_cpu_s.map(round3),
    }
}

/// The human-readable form.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let mode = match (r.duration_s, r.ops_limit) {
        (Some(d), _) => format!("{d:.1} s"),
        (None, Some(n)) => format!("{n} ops"),
        (None, None) => String::new(),
    };
    let _ = writeln!(
        out,
        "coffer-bench {} · {} · bucket {} · {} × {} objects · concurrency {} · {}{} · {} (+{:.1} s warm-up), window {:.2} s",
        r.version,
        r.endpoint,
        r.bucket,
        human_size(r.size),
        r.objects,
        r.concurrency,
        if r.tls { "HTTPS" } else { "HTTP" },
        if r.ssec { " · SSE-C" } else { "" },
        mode,
        r.warmup_s,
        r.elapsed_s,
    );
    if let Some(p) = &r.prepare {
        let _ = writeln!(out, "prepared {} objects in {:.1} s", p.objects, p.seconds);
    }
    let _ = writeln!(
        out,
        "{:<14} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "op", "ops", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    let order: Vec<&str> = OpKind::ALL.iter().map(|k| k.name()).collect();
    let mut names: Vec<&String> = r.ops.keys().collect();
    names.sort_by_key(|n| order.iter().position(|o| o == n));
    for name in names {
        let Some(o) = r.ops.get(name) else { continue };
        let lat = |f: fn(&Latency) -> f64| {
            o.latency_ms
                .as_ref()
                .map_or("-".to_owned(), |l| format!("{:.2}", f(l)))
        };
        let _ = writeln!(
            out,
            "{:<14} {:>9} {:>10.1} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
            name,
            o.ops,
            o.ops_per_s,
            o.mib_per_s,
            lat(|l| l.p50),
            lat(|l| l.p90),
            lat(|l| l.p99),
            lat(|l| l.max),
            o.errors
        );
    }
    if r.ops.len() > 1 {
        let t = &r.total;
        let _ = writeln!(
            out,
            "{:<14} {:>9} {:>10.1} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "total", t.ops, t.ops_per_s, t.mib_per_s, "", "", "", "", t.errors
        );
    }
    for (name, o) in &r.ops {
        for (code, n) in &o.errors_by_code {
            let sample = o.error_samples.get(code).map_or("", String::as_str);
            let _ = writeln!(out, "errors: {name}: {n}× {code}: {sample}");
        }
    }
    let cores = |cpu: Option<f64>| {
        cpu.map(|c| format!("{c:.2} s ({:.2} cores)", c / r.elapsed_s.max(1e-9)))
    };
    if let Some(c) = cores(r.client_cpu_s) {
        let _ = write!(out, "client CPU {c}");
        if let Some(s) = cores(r.server_cpu_s) {
            let _ = write!(out, " · server CPU {s}");
        }
        out.push('\n');
    }
    out
}
