//! The run: bucket check, prepare phase, warm-up, the measured window, and the progress line.
//!
//! The window opens at the end of the warm-up. With `--duration` it closes at a deadline, when ops still in
//! flight are abandoned (their bytes up to then count, their latencies do not); with `--ops N` it closes when the
//! N-th measured op completes. Throughput comes from byte meters sampled at the window's edges, ops/s and
//! latencies from the ops that completed inside it.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::time::sleep_until;

use crate::cli::{Config, OpKind, Stop};
use crate::s3::{Conn, OpError, S3};
use crate::stats::{Meter, Meters, WorkerStats};
use crate::transport::{Endpoint, Transport};

/// What the prepare phase did.
pub struct Prepared {
    pub objects: u64,
    pub seconds: f64,
}

/// Everything the report is built from.
pub struct Outcome {
    pub stats: WorkerStats,
    pub window: Duration,
    pub bytes: [u64; OpKind::ALL.len()],
    pub prepared: Option<Prepared>,
    pub client_cpu_s: Option<f64>,
    pub server_cpu_s: Option<f64>,
    pub tls: bool,
}

/// xorshift64*: a fast per-worker generator for op picks and range offsets (not for keys or secrets).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat` (Linux; 100 ticks/s).
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// A reading of the meters and CPU clocks at one instant.
struct Edge {
    at: Instant,
    bytes: [u64; OpKind::ALL.len()],
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
}

impl Edge {
    fn take(meters: &Meters, server_pid: Option<u32>) -> Edge {
        Edge {
            at: Instant::now(),
            bytes: meters.snapshot(),
            client_cpu: cpu_seconds(None),
            server_cpu: server_pid.and_then(|p| cpu_seconds(Some(p))),
        }
    }
}

struct RunCtx {
    cfg: Arc<Config>,
    s3: Arc<S3>,
    meters: Arc<Meters>,
    t0: Instant,
    deadline: Option<Instant>,
    budget: AtomicU64,
    next_key: AtomicU64,
}

impl RunCtx {
    async fn run_op(
        &self,
        op: OpKind,
        conn: &mut Conn,
        index: u64,
        random: u64,
        meter: &Meter,
    ) -> Result<(), OpError> {
        match op {
            OpKind::Put => self.s3.put(conn, index, meter).await,
            OpKind::Get => self.s3.get(conn, index, meter).await,
            OpKind::RangeGet => self.s3.range_get(conn, index, random, meter).await,
            OpKind::Head => self.s3.head(conn, index).await,
            OpKind::List => self.s3.list(conn, meter).await,
            OpKind::Delete => self.s3.delete(conn, index).await,
            OpKind::MultipartPut => self.s3.multipart_put(conn, index, meter).await,
        }
    }
}

async fn worker(ctx: Arc<RunCtx>, seed: u64) -> (WorkerStats, Option<Instant>) {
    let mut stats = WorkerStats::default();
    let mut rng = Rng::new(seed);
    let mut conn = Conn::default();
    // Handshake before the clock starts; a failure here shows up again, counted, on the first op.
    let _ = ctx.s3.connect(&mut conn).await;
    let mut last_done = None;
    loop {
        let started = Instant::now();
        if ctx.deadline.is_some_and(|d| started >= d) {
            break;
        }
        let measured = started >= ctx.t0;
        if let Stop::Ops(n) = ctx.cfg.stop
            && measured
            && ctx.budget.fetch_add(1, Ordering::Relaxed) >= n
        {
            break;
        }
        let op = ctx.cfg.mix.pick(rng.next());
        let index = ctx.next_key.fetch_add(1, Ordering::Relaxed);
        let random = rng.next();
        let meter = Meter::new(ctx.meters.bytes(op));
        let result = match ctx.deadline {
            Some(deadline) => tokio::select! {
                r = ctx.run_op(op, &mut conn, index, random, &meter) => Some(r),
                () = sleep_until(deadline.into()) => None,
            },
            None => Some(ctx.run_op(op, &mut conn, index, random, &meter).await),
        };
        let done = Instant::now();
        match result {
            // The window closed mid-op: abandon it with its connection.
            None => break,
            Some(Ok(())) => {
                ctx.meters.ops.fetch_add(1, Ordering::Relaxed);
                let counted = match ctx.cfg.stop {
                    Stop::Ops(_) => measured,
                    Stop::After(_) => done >= ctx.t0,
                };
                if counted {
                    stats.record(op, done - started);
                    last_done = Some(done);
                }
            }
            Some(Err(e)) => {
                meter.retract();
                ctx.meters.errors.fetch_add(1, Ordering::Relaxed);
                stats.error(op, &e);
                if e.breaks_connection() {
                    conn.reset();
                }
                if matches!(e, OpError::Connect(_)) {
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    (stats, last_done)
}

/// The progress line on stderr: rewritten in place on a terminal, a line every 5 s otherwise.
async fn progress(meters: Arc<Meters>, start: Instant, t0: Instant, label: &'static str) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_secs(if tty { 1 } else { 5 });
    let mut last = (
        Instant::now(),
        meters.total_bytes(),
        meters.ops.load(Ordering::Relaxed),
    );
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let bytes = meters.total_bytes();
        let ops = meters.ops.load(Ordering::Relaxed);
        let dt = (now - last.0).as_secs_f64().max(1e-9);
        let phase = if now < t0 { "warmup" } else { label };
        let line = format!(
            "[{:6.1}s {phase:<7}] {:9.1} MiB/s {:9.1} ops/s   ops {ops}  errors {}",
            (now - start).as_secs_f64(),
            (bytes - last.1) as f64 / dt / (1 << 20) as f64,
            (ops - last.2) as f64 / dt,
            meters.errors.load(Ordering::Relaxed),
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        last = (now, bytes, ops);
    }
}

/// Upload objects 0..N once (not timed), so reads find them.
async fn prepare(cfg: &Arc<Config>, s3: &Arc<S3>) -> Result<Prepared, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let meters = Arc::new(Meters::new());
    let progress_task =
        (!cfg.quiet).then(|| tokio::spawn(progress(meters.clone(), started, started, "prepare")));
    let workers = cfg
        .concurrency
        .min(usize::try_from(cfg.objects).unwrap_or(usize::MAX));
    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (cfg, s3, next, meters) = (cfg.clone(), s3.clone(), next.clone(), meters.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::default();
            let mut errors = WorkerStats::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cfg.objects {
                    break;
                }
                match s3
                    .put(&mut conn, i, &Meter::new(meters.bytes(OpKind::Put)))
                    .await
                {
                    Ok(()) => {
                        meters.ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        meters.errors.fetch_add(1, Ordering::Relaxed);
                        errors.error(OpKind::Put, &e);
                        if e.breaks_connection() {
                            conn.reset();
                        }
                    }
                }
            }
            errors
        }));
    }
    let mut errors = WorkerStats::default();
    for h in handles {
        errors.merge(h.await.map_err(|e| format!("prepare worker failed: {e}"))?);
    }
    if let Some(t) = progress_task {
        t.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    if let Some(put) = errors.get(OpKind::Put)
        && put.error_count() > 0
    {
        let list: Vec<String> = put
            .errors
            .iter()
            .map(|(k, n)| {
                format!(
                    "{n}× {k} ({})",
                    put.samples.get(k).map_or("", String::as_str)
                )
            })
            .collect();
        return Err(format!(
            "prepare: {} of {} PUTs failed: {}",
            put.error_count(),
            cfg.objects,
            list.join("; ")
        ));
    }
    Ok(Prepared {
        objects: cfg.objects,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The whole run.
pub async fn run(cfg: Arc<Config>) -> Result<Outcome, String> {
    let endpoint = Endpoint::parse(&cfg.endpoint)?;
    let tls = endpoint.https;
    if !tls && cfg.ssec_key.is_some() && !cfg.quiet {
        eprintln!("coffer-bench: warning: sending SSE-C keys over plain HTTP");
    }
    let transport = Transport::new(endpoint, cfg.ca_bundle.as_deref(), cfg.insecure)?;
    let s3 = Arc::new(S3::new(&cfg, transport)?);
    {
        let mut conn = Conn::default();
        s3.ensure_bucket(&mut conn).await?;
    }
    let prepared = if cfg.prepare {
        Some(prepare(&cfg, &s3).await?)
    } else {
        None
    };

    let meters = Arc::new(Meters::new());
    let start = Instant::now();
    let t0 = start + cfg.warmup;
    let deadline = match cfg.stop {
        Stop::After(d) => Some(t0 + d),
        Stop::Ops(_) => None,
    };
    let ctx = Arc::new(RunCtx {
        cfg: cfg.clone(),
        s3,
        meters: meters.clone(),
        t0,
        deadline,
        budget: AtomicU64::new(0),
        next_key: AtomicU64::new(0),
    });

    // The window's edges: read here when there is no warm-up, else by a task woken at t0 (and at the deadline).
    let pid = cfg.server_pid;
    let opening = if cfg.warmup.is_zero() {
        Some(Edge::take(&meters, pid))
    } else {
        None
    };
    let edges = {
        let meters = meters.clone();
        tokio::spawn(async move {
            let open = match opening {
                Some(e) => e,
                None => {
                    sleep_until(t0.into()).await;
                    Edge::take(&meters, pid)
                }
            };
            let close = match deadline {
                Some(d) => {
                    sleep_until(d.into()).await;
                    Some(Edge::take(&meters, pid))
                }
                None => None,
            };
            (open, close)
        })
    };
    let progress_task =
        (!cfg.quiet).then(|| tokio::spawn(progress(meters.clone(), start, t0, "run")));

    let seed = random_seed();
    let handles: Vec<_> = (0..cfg.concurrency)
        .map(|i| {
            tokio::spawn(worker(
                ctx.clone(),
                seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ))
        })
        .collect();
    let mut stats = WorkerStats::default();
    let mut last_done: Option<Instant> = None;
    for h in handles {
        let (s, done) = h.await.map_err(|e| format!("worker failed: {e}"))?;
        stats.merge(s);
        last_done = last_done.max(done);
    }
    let ended = Edge::take(&meters, pid);
    let (open, close) = edges.await.map_err(|e| format!("timer task failed: {e}"))?;
    if let Some(t) = progress_task {
        t.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    let close = match close {
        Some(c) => c,
        // --ops: the window ends with the last measured op; bytes and CPU as read after the workers ended.
        None => Edge {
            at: last_done.unwrap_or(ended.at).max(open.at),
            ..ended
        },
    };
    let bytes = std::array::from_fn(|i| close.bytes[i].saturating_sub(open.bytes[i]));
    let diff = |a: Option<f64>, b: Option<f64>| Some((b? - a?).max(0.0));
    Ok(Outcome {
        stats,
        window: close
            .at
            .saturating_duration_since(open.at)
            .max(Duration::from_micros(1)),
        bytes,
        prepared,
        client_cpu_s: diff(open.client_cpu, close.client_cpu),
        server_cpu_s: diff(open.server_cpu, close.server_cpu),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds(None).is_some());
        }
        assert!(cpu_seconds(Some(u32::MAX)).is_none());
    }

    #[test]
    fn rng_is_not_stuck() {
        let mut r = Rng::new(0);
        let a = r.next();
        let b = r.next();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
