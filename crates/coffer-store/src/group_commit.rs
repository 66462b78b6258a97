//! Group commit: concurrent metadata writes share one redb write transaction and one fsync.
//!
//! Every write to the metadata store is an operation, a closure over the write transaction.
//! A caller that finds no commit in progress becomes the leader: it takes every operation
//! queued so far (its own included), applies them in arrival order in one transaction, commits
//! it with redb's `Durability::Immediate` (the commit returns only once the file is fsynced),
//! and only then hands each waiting caller its result. Callers that arrive meanwhile queue for
//! the next batch. Under load one fsync thus serves many writes; a lone write pays what it paid
//! before, one transaction and one fsync, and is not delayed to wait for company.
//!
//! A failing operation must leave nothing in the shared transaction and must not fail the
//! others. redb allows a savepoint only before a transaction's first table access, so there is
//! no per-operation rollback: the leader aborts the transaction, answers the failed operation
//! with its error, and replays the batch without it. Operations are functions of the
//! transaction's state alone (they touch nothing outside it: blob files are removed by callers
//! after the commit), so a replay computes exactly what the first run did, and the outcome is
//! the one the operations would have had one transaction each, in the same order.
//!
//! What this must never do: answer a caller before the transaction holding its write is
//! durable, or commit a transaction that holds part of a failed operation.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use redb::{Database, WriteTransaction};

use crate::StoreError;

/// Operations per transaction at most: bounds the work (and the replays) one commit carries.
const MAX_BATCH: usize = 128;

type Output = Box<dyn Any + Send>;
type Apply = Box<dyn FnMut(&WriteTransaction) -> Result<Output, StoreError> + Send>;

struct Queued {
    ticket: u64,
    apply: Apply,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    next_ticket: u64,
    /// A leader is running a batch.
    committing: bool,
    /// Results of committed (or failed) operations whose callers have not picked them up yet.
    done: HashMap<u64, Result<Output, StoreError>>,
    stats: CommitStats,
}

/// Counters, for tests and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions committed.
    pub commits: u64,
    /// Operations acknowledged as committed.
    pub committed_ops: u64,
    /// Operations that failed (each alone: the others of its batch were replayed).
    pub failed_ops: u64,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    wake: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (operations run outside it), but a
        // poisoned lock must not wedge every later write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> CommitStats {
        self.lock().stats
    }

    /// Operations waiting for a leader to take them (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Runs `op` in a write transaction (shared with concurrent callers' operations) and
    /// returns its result once that transaction is durably committed. If `op` fails, nothing
    /// it wrote is committed and its error is returned. Blocks: call from a blocking context.
    pub(crate) fn write<T, F>(&self, db: &Database, mut op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let apply: Apply = Box::new(move |txn| op(txn).map(|v| Box::new(v) as Output));
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push_back(Queued { ticket, apply });
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result.and_then(|out| {
                    out.downcast::<T>()
                        .map(|v| *v)
                        .map_err(|_| StoreError::Meta("group commit: mistyped result".into()))
                });
            }
            if state.committing {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: our own operation is still queued (we have no result), so it is in this
            // batch or, behind MAX_BATCH others, in one we lead next.
            state.committing = true;
            let n = state.queue.len().min(MAX_BATCH);
            let batch: Vec<Queued> = state.queue.drain(..n).collect();
            drop(state);
            let tickets: Vec<u64> = batch.iter().map(|q| q.ticket).collect();
            let outcome = catch_unwind(AssertUnwindSafe(|| run_batch(db, batch)));
            state = self.lock();
            match outcome {
                Ok(batch) => {
                    state.stats.commits += u64::from(batch.committed);
                    for (ticket, result) in batch.results {
                        match &result {
                            Ok(_) => state.stats.committed_ops += 1,
                            Err(_) => state.stats.failed_ops += 1,
                        }
                        state.done.insert(ticket, result);
                    }
                }
                Err(_) => {
                    // Not reached: operations and the commit run under their own
                    // catch_unwind. Should it happen, nobody may wait forever.
                    for t in tickets {
                        state.done.entry(t).or_insert_with(|| {
                            Err(StoreError::Meta("metadata commit panicked".into()))
                        });
                    }
                }
            }
            state.committing = false;
            self.wake.notify_all();
        }
    }
}

struct BatchOutcome {
    results: Vec<(u64, Result<Output, StoreError>)>,
    committed: bool,
}

/// Applies the batch in one transaction and commits it; a failed operation is answered alone
/// and the transaction is redone without it.
fn run_batch(db: &Database, mut live: Vec<Queued>) -> BatchOutcome {
    let mut results = Vec::with_capacity(live.len());
    while !live.is_empty() {
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                let msg = e.to_string();
                results.extend(
                    live.iter()
                        .map(|q| (q.ticket, Err(StoreError::Meta(msg.clone())))),
                );
                break;
            }
        };
        let mut outputs = Vec::with_capacity(live.len());
        let mut failed = None;
        for (i, q) in live.iter_mut().enumerate() {
            match catch_unwind(AssertUnwindSafe(|| (q.apply)(&txn))) {
                Ok(Ok(out)) => outputs.push(out),
                Ok(Err(e)) => {
                    failed = Some((i, e));
                    break;
                }
                Err(_) => {
                    failed = Some((i, StoreError::Meta("a metadata write panicked".into())));
                    break;
                }
            }
        }
        if let Some((i, e)) = failed {
            // Nothing of this attempt may be committed: drop it all, answer the failed
            // operation, and redo the others from the committed state.
            drop(outputs);
            if let Err(abort) = txn.abort() {
                tracing::warn!(error = %abort, "aborting a metadata transaction failed");
            }
            let q = live.remove(i);
            results.push((q.ticket, Err(e)));
            continue;
        }
        let committed = catch_unwind(AssertUnwindSafe(|| txn.commit()));
        match committed {
            Ok(Ok(())) => {
                results.extend(
                    live.iter()
                        .map(|q| q.ticket)
                        .zip(outputs.into_iter().map(Ok)),
                );
                return BatchOutcome {
                    results,
                    committed: true,
                };
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                results.extend(
                    live.iter()
                        .map(|q| (q.ticket, Err(StoreError::Meta(msg.clone())))),
                );
            }
            Err(_) => {
                results.extend(live.iter().map(|q| {
                    (
                        q.ticket,
                        Err(StoreError::Meta("metadata commit panicked".into())),
                    )
                }));
            }
        }
        break;
    }
    BatchOutcome {
        results,
        committed: false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;
    use crate::MetaStore;

    const T: TableDefinition<&str, &str> = TableDefinition::new("group_commit_test");

    fn store() -> (tempfile::TempDir, Arc<MetaStore>) {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        (dir, Arc::new(meta))
    }

    fn put(meta: &MetaStore, k: &str, v: &str) -> Result<(), StoreError> {
        let (k, v) = (k.to_owned(), v.to_owned());
        meta.write(move |txn| {
            txn.open_table(T)?.insert(k.as_str(), v.as_str())?;
            Ok(())
        })
    }

    fn get(meta: &MetaStore, k: &str) -> Option<String> {
        let txn = meta.db.begin_read().unwrap();
        let table = match txn.open_table(T) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return None,
            Err(e) => panic!("{e}"),
        };
        table.get(k).unwrap().map(|v| v.value().to_owned())
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Starts a leader whose batch holds one operation that waits until `n` more operations are
    /// queued behind it, so that those `n` form the next batch together.
    fn hold_leader(meta: &Arc<MetaStore>, n: usize) -> std::thread::JoinHandle<()> {
        let gate = Arc::clone(meta);
        let (started_tx, started_rx) = mpsc::channel();
        let leader = {
            let meta = Arc::clone(meta);
            std::thread::spawn(move || {
                meta.write(move |txn| {
                    let _ = started_tx.send(());
                    wait_until("the batch to queue", || gate.commits.queued() >= n);
                    txn.open_table(T)?.insert("leader", "1")?;
                    Ok(())
                })
                .unwrap();
            })
        };
        started_rx.recv().unwrap();
        leader
    }

    #[test]
    fn concurrent_writes_share_one_commit() {
        let (_dir, meta) = store();
        let before = meta.commit_stats();
        let leader = hold_leader(&meta, 10);
        let writers: Vec<_> = (0..10)
            .map(|i| {
                let meta = Arc::clone(&meta);
                std::thread::spawn(move || put(&meta, &format!("k{i}"), &format!("v{i}")))
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        leader.join().unwrap();
        for i in 0..10 {
            assert_eq!(get(&meta, &format!("k{i}")), Some(format!("v{i}")));
        }
        let after = meta.commit_stats();
        // The held leader's transaction, then one for the ten that queued behind it.
        assert_eq!(after.commits - before.commits, 2);
        assert_eq!(after.committed_ops - before.committed_ops, 11);
        assert_eq!(after.failed_ops, 0);
    }

    #[test]
    fn many_writers_all_land_and_share_fsyncs() {
        let (_dir, meta) = store();
        let writers: Vec<_> = (0..16)
            .map(|t| {
                let meta = Arc::clone(&meta);
                std::thread::spawn(move || {
                    for i in 0..40 {
                        put(&meta, &format!("t{t}-{i}"), "x").unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        for t in 0..16 {
            for i in 0..40 {
                assert!(get(&meta, &format!("t{t}-{i}")).is_some(), "t{t}-{i} lost");
            }
        }
        let stats = meta.commit_stats();
        assert_eq!(stats.committed_ops, 640);
        assert!(
            stats.commits < 640,
            "16 concurrent writers never shared a commit: {stats:?}"
        );
    }

    #[test]
    fn a_failing_operation_leaves_nothing_and_fails_nobody_else() {
        let (_dir, meta) = store();
        put(&meta, "b", "before").unwrap();
        let leader = hold_leader(&meta, 4);
        type Op = Box<dyn FnOnce(&MetaStore) -> Result<(), StoreError> + Send>;
        let spawn = |f: Op| {
            let meta = Arc::clone(&meta);
            std::thread::spawn(move || f(&meta))
        };
        let ok1 = spawn(Box::new(|m| put(m, "a", "1")));
        // Writes, then fails: its write must not be committed with the others.
        let failing = spawn(Box::new(|m| {
            m.write(|txn| {
                txn.open_table(T)?.insert("b", "partial")?;
                txn.open_table(T)?.insert("d", "partial")?;
                Err::<(), _>(StoreError::Corrupt("refused on purpose".into()))
            })
        }));
        // Panics halfway: the same.
        let panicking = spawn(Box::new(|m| {
            m.write(|txn| {
                txn.open_table(T)?.insert("e", "partial")?;
                panic!("an operation that panics");
            })
        }));
        let ok2 = spawn(Box::new(|m| put(m, "c", "3")));
        assert!(ok1.join().unwrap().is_ok());
        assert!(ok2.join().unwrap().is_ok());
        assert!(matches!(
            failing.join().unwrap(),
            Err(StoreError::Corrupt(m)) if m == "refused on purpose"
        ));
        assert!(matches!(
            panicking.join().unwrap(),
            Err(StoreError::Meta(_))
        ));
        leader.join().unwrap();
        assert_eq!(get(&meta, "a").as_deref(), Some("1"));
        assert_eq!(get(&meta, "c").as_deref(), Some("3"));
        assert_eq!(get(&meta, "b").as_deref(), Some("before"));
        assert_eq!(get(&meta, "d"), None);
        assert_eq!(get(&meta, "e"), None);
        let stats = meta.commit_stats();
        assert_eq!(stats.failed_ops, 2);
        // before, the leader, then the batch of four: two failures replayed away, one commit.
        assert_eq!(stats.commits, 3);
        // And the committer still works.
        put(&meta, "f", "6").unwrap();
        assert_eq!(get(&meta, "f").as_deref(), Some("6"));
    }

    #[test]
    fn operations_in_a_batch_see_their_predecessors() {
        let (_dir, meta) = store();
        let leader = hold_leader(&meta, 2);
        // A compare-and-set pair in one batch: whichever runs second sees the first's write,
        // exactly as with one transaction each.
        let cas = |meta: Arc<MetaStore>, who: &'static str| {
            std::thread::spawn(move || {
                meta.write(move |txn| {
                    let mut t = txn.open_table(T)?;
                    if t.get("owner")?.is_some() {
                        return Err(StoreError::Condition(
                            crate::ConditionFailure::PreconditionFailed,
                        ));
                    }
                    t.insert("owner", who)?;
                    Ok(())
                })
            })
        };
        let x = cas(Arc::clone(&meta), "x");
        let y = cas(Arc::clone(&meta), "y");
        let (x, y) = (x.join().unwrap(), y.join().unwrap());
        leader.join().unwrap();
        assert!(x.is_ok() != y.is_ok(), "exactly one must win: {x:?} {y:?}");
        let winner = if x.is_ok() { "x" } else { "y" };
        assert_eq!(get(&meta, "owner").as_deref(), Some(winner));
    }

    #[test]
    fn a_complete_refused_by_its_condition_keeps_its_upload_in_a_shared_batch() {
        use crate::{BucketRecord, ConditionFailure, ObjectRecord, PartRecord, UploadRecord};
        let (_dir, meta) = store();
        let bucket = BucketRecord {
            owner: "o".into(),
            created_ms: 0,
            region: "r".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        meta.create_bucket("b", &bucket).unwrap();
        let upload = UploadRecord {
            upload_id: "u".into(),
            key: "k".into(),
            owner: "o".into(),
            initiated_ms: 0,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            user_metadata: vec![],
            checksum_algorithm: None,
            acl: None,
            tags: Vec::new(),
            encryption: None,
        };
        meta.create_upload("b", &upload).unwrap();
        let part = PartRecord {
            part_number: 1,
            size: 1,
            etag: "e".into(),
            blob: "p1".into(),
            last_modified_ms: 0,
            stream_salt: None,
            checksum: None,
        };
        meta.put_part("b", "k", "u", &part).unwrap();
        let object = |blob: &str| ObjectRecord {
            version_id: "v".into(),
            size: 1,
            etag: "e".into(),
            last_modified_ms: 0,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            user_metadata: vec![],
            checksum: None,
            segments: vec![crate::Segment {
                blob: blob.into(),
                part_number: 1,
                size: 1,
                stream_salt: None,
                etag: String::new(),
                checksum: None,
                inline: false,
            }],
            encryption: None,
            delete_marker: false,
            null_version: false,
            upload_id: None,
            acl: None,
            tags: Vec::new(),
        };
        let leader = hold_leader(&meta, 2);
        // Complete removes the upload and its parts before it checks the condition, so a
        // refusal happens after it wrote: none of that may reach the shared commit.
        let complete = {
            let (meta, rec) = (Arc::clone(&meta), object("p1"));
            std::thread::spawn(move || {
                let refuse: crate::SharedWriteCondition =
                    Arc::new(|_| Err(ConditionFailure::PreconditionFailed));
                meta.complete_upload("b", "k", "u", &rec, &[1], Some(refuse))
            })
        };
        let other = {
            let (meta, rec) = (Arc::clone(&meta), object("x"));
            std::thread::spawn(move || meta.put_object("b", "other", rec, None, None))
        };
        assert!(matches!(
            complete.join().unwrap(),
            Err(StoreError::Condition(ConditionFailure::PreconditionFailed))
        ));
        assert!(other.join().unwrap().is_ok());
        leader.join().unwrap();
        assert!(meta.upload("b", "k", "u").unwrap().is_some(), "upload lost");
        assert_eq!(meta.parts("u", 0, 10).unwrap(), vec![part]);
        assert!(meta.object("b", "k").unwrap().is_none());
        assert!(meta.object("b", "other").unwrap().is_some());
        assert_eq!(meta.commit_stats().failed_ops, 1);
    }

    /// Acknowledged means durable: a child process writes from 8 threads and prints each key
    /// once its write returned; it is killed (SIGKILL) mid-stream, and every key it printed
    /// must be in the database when it is reopened.
    #[test]
    fn acknowledged_writes_survive_a_kill() {
        const CHILD: &str = "COFFER_GROUP_COMMIT_CHILD_DB";
        if let Ok(path) = std::env::var(CHILD) {
            let meta = Arc::new(MetaStore::open(std::path::Path::new(&path)).unwrap());
            let (tx, rx) = mpsc::channel::<String>();
            for t in 0..8 {
                let (meta, tx) = (Arc::clone(&meta), tx.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        let k = format!("t{t}-{i}");
                        put(&meta, &k, "v").unwrap();
                        if tx.send(k).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut out = std::io::stdout().lock();
            for k in rx {
                use std::io::Write as _;
                writeln!(out, "ack {k}").unwrap();
                out.flush().unwrap();
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.redb");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "group_commit::tests::acknowledged_writes_survive_a_kill",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, &db)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        while acked.len() < 300 {
            let Some(line) = lines.next() else { break };
            if let Some(k) = line.unwrap().strip_prefix("ack ") {
                acked.push(k.to_owned());
            }
        }
        child.kill().unwrap();
        // What the child printed before it died still counts.
        for line in lines.map_while(Result::ok) {
            if let Some(k) = line.strip_prefix("ack ") {
                acked.push(k.to_owned());
            }
        }
        child.wait().unwrap();
        assert!(
            acked.len() >= 300,
            "the child acknowledged only {}",
            acked.len()
        );
        let meta = MetaStore::open(&db).unwrap();
        let lost: Vec<&String> = acked.iter().filter(|k| get(&meta, k).is_none()).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost: {lost:?}",
            lost.len()
        );
    }
}
