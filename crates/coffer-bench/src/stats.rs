//! What each worker measures (latency histograms, op and error counts per op kind) and how workers' figures
//! are merged. Byte counts are not here: they are shared atomic meters sampled at the window's edges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cli::OpKind;
use crate::s3::OpError;

/// Latencies are recorded in microseconds, 3 significant digits, up to an hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;
const KINDS: usize = OpKind::ALL.len();

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// One op kind's figures.
pub struct OpStats {
    /// Successful ops inside the measured window.
    pub ops: u64,
    pub latency_us: Histogram<u64>,
    /// Failed ops, in any phase, by error key.
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each error key.
    pub samples: BTreeMap<String, String>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            ops: 0,
            latency_us: new_histogram(),
            errors: BTreeMap::new(),
            samples: BTreeMap::new(),
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: OpStats) {
        self.ops += other.ops;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        for (k, s) in other.samples {
            self.samples.entry(k).or_insert(s);
        }
    }
}

/// A worker's figures, one slot per op kind (created on first use).
#[derive(Default)]
pub struct WorkerStats {
    per_op: [Option<OpStats>; KINDS],
}

impl WorkerStats {
    fn slot(&mut self, op: OpKind) -> &mut OpStats {
        self.per_op[op.index()].get_or_insert_with(OpStats::new)
    }

    pub fn record(&mut self, op: OpKind, latency: Duration) {
        let s = self.slot(op);
        s.ops += 1;
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        s.latency_us.saturating_record(us);
    }

    pub fn error(&mut self, op: OpKind, e: &OpError) {
        let s = self.slot(op);
        let key = e.key();
        *s.errors.entry(key.clone()).or_default() += 1;
        s.samples.entry(key).or_insert_with(|| e.detail());
    }

    pub fn merge(&mut self, other: WorkerStats) {
        for (mine, theirs) in self.per_op.iter_mut().zip(other.per_op) {
            if let Some(t) = theirs {
                match mine {
                    Some(m) => m.merge(t),
                    None => *mine = Some(t),
                }
            }
        }
    }

    pub fn get(&self, op: OpKind) -> Option<&OpStats> {
        self.per_op[op.index()].as_ref()
    }

    pub fn total_errors(&self) -> u64 {
        self.per_op.iter().flatten().map(OpStats::error_count).sum()
    }
}

/// Counts one op's bytes into a shared meter, and keeps the op's own share so that a failed op can take its
/// bytes back out: throughput counts only bytes of ops that succeeded (or were still running at the deadline).
#[derive(Clone)]
pub struct Meter {
    shared: Arc<AtomicU64>,
    own: Arc<AtomicU64>,
}

impl Meter {
    pub fn new(shared: &Arc<AtomicU64>) -> Meter {
        Meter {
            shared: shared.clone(),
            own: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A meter that feeds no shared count.
    pub fn detached() -> Meter {
        Meter::new(&Arc::new(AtomicU64::new(0)))
    }

    pub fn add(&self, n: u64) {
        self.shared.fetch_add(n, Ordering::Relaxed);
        self.own.fetch_add(n, Ordering::Relaxed);
    }

    /// This op's bytes so far.
    #[cfg(test)]
    pub fn own(&self) -> u64 {
        self.own.load(Ordering::Relaxed)
    }

    /// Take this op's bytes back out of the shared count (the op failed).
    pub fn retract(&self) {
        let n = self.own.swap(0, Ordering::Relaxed);
        self.shared.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Live counters shared by all workers: bytes per op kind, and totals for the progress line.
pub struct Meters {
    pub bytes: [Arc<AtomicU64>; KINDS],
    pub ops: AtomicU64,
    pub errors: AtomicU64,
}

impl Meters {
    pub fn new() -> Meters {
        Meters {
            bytes: std::array::from_fn(|_| Arc::new(AtomicU64::new(0))),
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub fn bytes(&self, op: OpKind) -> &Arc<AtomicU64> {
        &self.bytes[op.index()]
    }

    pub fn snapshot(&self) -> [u64; KINDS] {
        std::array::from_fn(|i| self.bytes[i].load(Ordering::Relaxed))
    }

    pub fn total_bytes(&self) -> u64 {
        self.snapshot().iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_retract_failed_ops() {
        let shared = Arc::new(AtomicU64::new(0));
        let ok = Meter::new(&shared);
        let failed = Meter::new(&shared);
        ok.add(10);
        failed.add(5);
        failed.clone().add(2);
        assert_eq!((shared.load(Ordering::Relaxed), failed.own()), (17, 7));
        failed.retract();
        assert_eq!(shared.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn merge_adds_ops_errors_and_latencies() {
        let mut a = WorkerStats::default();
        a.record(OpKind::Get, Duration::from_millis(2));
        a.error(
            OpKind::Get,
            &OpError::Status {
                status: 404,
                code: Some("NoSuchKey".into()),
                message: None,
            },
        );
        let mut b = WorkerStats::default();
        b.record(OpKind::Get, Duration::from_millis(4));
        b.record(OpKind::Put, Duration::from_micros(0));
        b.error(
            OpKind::Get,
            &OpError::Status {
                status: 404,
                code: Some("NoSuchKey".into()),
                message: None,
            },
        );
        a.merge(b);
        let get = a.get(OpKind::Get).unwrap();
        assert_eq!(get.ops, 2);
        assert_eq!(get.errors.get("404 NoSuchKey"), Some(&2));
        assert_eq!(get.latency_us.len(), 2);
        assert!(get.latency_us.max() >= 3990);
        assert_eq!(a.get(OpKind::Put).unwrap().latency_us.min(), 1);
        assert_eq!(a.total_errors(), 2);
        assert!(a.get(OpKind::Head).is_none());
    }
}
