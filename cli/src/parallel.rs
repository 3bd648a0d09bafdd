//! Runs one blocking function over many items on every core, keeping their
//! order. The file system work of a task with tens of thousands of paths (a
//! hit's `stat`s, a miss's hashing, the tracer's end-of-run `lstat`s) is a
//! queue of independent system calls that the kernel serves in parallel.
//! Below `min` items the threads cost more than they save, and the work runs
//! on the caller's thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `items.iter().map(f).collect()`, on up to as many threads as there are
/// cores once there are at least `min` items. A panic in `f` reaches the
/// caller as it would without threads.
///
/// Workers take the items in small batches from a shared counter rather
/// than one fixed half each: the cost of an item varies by orders of
/// magnitude (hashing a 21 MB native addon next to a 100-byte module), and
/// sorted paths put the large files of one package side by side, so fixed
/// halves left one core hashing most of the bytes while the other waited.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], min: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if !spreads(items.len(), min) {
        return items.iter().map(f).collect();
    }
    let threads = cores().min(items.len());
    let batch = batch_len(items.len(), threads);
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut done: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let start = next.fetch_add(batch, Ordering::Relaxed);
                        if start >= items.len() {
                            break mine;
                        }
                        let end = (start + batch).min(items.len());
                        mine.push((start, items[start..end].iter().map(f).collect()));
                    }
                })
            })
            .collect();
        let mut done = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(batches) => done.extend(batches),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(start, _)| *start);
    let mut out = Vec::with_capacity(items.len());
    for (_, part) in done {
        out.extend(part);
    }
    out
}

/// Drops `value` on a thread of the blocking pool instead of the caller's.
/// What one large run leaves behind (tens of thousands of paths in maps
/// and sets, for a task that reads 50,000 files) takes milliseconds to
/// free, one allocation at a time, and nothing waits for it: not the next
/// task, not vp's exit, which ends the process without freeing anything.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    blocking::unblock(move || drop(value)).detach();
}

/// Items per batch: enough batches per thread (64) that a run of slow
/// items is split between threads, and the batches of a long list of cheap
/// items (50,000 `stat`s) large enough that taking one costs nothing.
fn batch_len(len: usize, threads: usize) -> usize {
    (len / (threads * 64)).clamp(1, 1024)
}

/// Whether `map` of `len` items with this `min` runs on several threads.
/// (Work done ahead of need only pays when it is spread.)
pub(crate) fn spreads(len: usize, min: usize) -> bool {
    len >= min.max(2) && cores() >= 2
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_above_and_below_the_threshold() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled: Vec<u32> = items.iter().map(|i| i * 2).collect();
        assert_eq!(map(&items, 10, |i| i * 2), doubled);
        assert_eq!(map(&items, 5000, |i| i * 2), doubled);
        assert_eq!(map(&[] as &[u32], 0, |i| *i), Vec::<u32>::new());
        assert_eq!(map(&[7u32], 0, |i| *i), vec![7]);
    }

    /// Runs `f` for an item once at least `n` distinct threads have entered
    /// `wait_for` (or after 10 s, which fails the test that relies on it):
    /// items that block until another worker has joined prove that the
    /// work was shared without depending on how fast threads start.
    struct Rendezvous {
        seen: std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>,
        joined: std::sync::Condvar,
    }

    impl Rendezvous {
        fn new() -> Self {
            Self {
                seen: std::sync::Mutex::new(std::collections::HashSet::new()),
                joined: std::sync::Condvar::new(),
            }
        }

        /// Whether `n` threads got here within the timeout.
        fn wait_for(&self, n: usize) -> bool {
            let mut seen = self.seen.lock().expect("lock");
            seen.insert(std::thread::current().id());
            self.joined.notify_all();
            let (seen, _) = self
                .joined
                .wait_timeout_while(seen, std::time::Duration::from_secs(10), |s| s.len() < n)
                .expect("lock");
            seen.len() >= n
        }
    }

    #[test]
    fn uses_more_than_one_thread_when_there_are_cores() {
        if cores() < 2 {
            return;
        }
        let caller = std::thread::current().id();
        let items: Vec<u32> = (0..64).collect();
        let meet = Rendezvous::new();
        // Every item checks in; the first waits for a second worker to
        // have done so: with one worker only, it would time out.
        let got = map(&items, 2, |i| {
            (
                meet.wait_for(if *i == 0 { 2 } else { 0 }),
                std::thread::current().id(),
            )
        });
        assert!(got.iter().all(|(met, _)| *met), "a second worker joined");
        assert!(got.iter().all(|(_, id)| *id != caller), "ran on workers");
    }

    /// Expensive items side by side (sorted paths put a package's large
    /// files together) are shared between workers, not left to one: each
    /// of the first 16 items waits until two workers are inside that run.
    /// With one fixed half per worker, only one ever would be.
    #[test]
    fn clustered_expensive_items_are_shared_between_workers() {
        if cores() < 2 {
            return;
        }
        let items: Vec<u32> = (0..256).collect();
        let meet = Rendezvous::new();
        let met = map(&items, 2, |i| *i >= 16 || meet.wait_for(2));
        assert!(
            met.iter().all(|m| *m),
            "two workers shared the first 16 items"
        );
    }

    /// Every item runs exactly once, in order, whatever the length.
    #[test]
    fn every_item_runs_exactly_once() {
        use std::sync::atomic::AtomicU32;
        for len in [2, 3, 17, 128, 1000, 5000] {
            let items: Vec<usize> = (0..len).collect();
            let runs: Vec<AtomicU32> = (0..len).map(|_| AtomicU32::new(0)).collect();
            let out = map(&items, 2, |i| {
                runs[*i].fetch_add(1, Ordering::Relaxed);
                *i
            });
            assert_eq!(out, items, "{len}: order");
            assert!(
                runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                "{len}: each item once"
            );
        }
    }

    #[test]
    fn batches_cover_every_length() {
        for len in [1, 2, 7, 64, 1000, 100_000] {
            for threads in [1, 2, 8] {
                let b = batch_len(len, threads);
                assert!((1..=1024).contains(&b), "{len} {threads}: {b}");
            }
        }
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let items: Vec<u32> = (0..100).collect();
        let got = std::panic::catch_unwind(|| map(&items, 2, |i| assert!(*i != 77, "boom")));
        assert!(got.is_err());
    }
}
