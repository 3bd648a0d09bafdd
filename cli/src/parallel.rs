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

    #[test]
    fn uses_more_than_one_thread_when_there_are_cores() {
        if cores() < 2 {
            return;
        }
        let caller = std::thread::current().id();
        let items: Vec<u32> = (0..64).collect();
        // Each item takes a moment, so no worker finishes the list before
        // the other has started.
        let ids = map(&items, 2, |_| {
            std::thread::sleep(std::time::Duration::from_millis(1));
            std::thread::current().id()
        });
        assert!(ids.iter().all(|id| *id != caller), "ran on workers");
        let workers: std::collections::HashSet<_> = ids.iter().collect();
        assert!(workers.len() >= 2, "on more than one worker");
    }

    /// Expensive items side by side (sorted paths put a package's large
    /// files together) are shared between workers, not left to one.
    #[test]
    fn clustered_expensive_items_are_shared_between_workers() {
        if cores() < 2 {
            return;
        }
        let items: Vec<u32> = (0..256).collect();
        // The first 16 items are slow; with fixed halves one worker would
        // take them all.
        let ids = map(&items, 2, |i| {
            if *i < 16 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::current().id()
        });
        let slow: std::collections::HashSet<_> = ids[..16].iter().collect();
        assert!(
            slow.len() >= 2,
            "the slow items ran on {} worker(s)",
            slow.len()
        );
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
