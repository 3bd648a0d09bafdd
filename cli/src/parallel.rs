//! Runs one blocking function over many items on every core, keeping their
//! order. The file system work of a task with tens of thousands of paths (a
//! hit's `stat`s, a miss's hashing, the tracer's end-of-run `lstat`s) is a
//! queue of independent system calls that the kernel serves in parallel.
//! Below `min` items the threads cost more than they save, and the work runs
//! on the caller's thread.

/// `items.iter().map(f).collect()`, on up to as many threads as there are
/// cores once there are at least `min` items. A panic in `f` reaches the
/// caller as it would without threads.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], min: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if !spreads(items.len(), min) {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(cores());
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for worker in workers {
            match worker.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
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
        let ids = map(&items, 2, |_| std::thread::current().id());
        assert!(ids.iter().all(|id| *id != caller), "ran on workers");
        assert!(ids.first() != ids.last(), "on more than one worker");
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let items: Vec<u32> = (0..100).collect();
        let got = std::panic::catch_unwind(|| map(&items, 2, |i| assert!(*i != 77, "boom")));
        assert!(got.is_err());
    }
}
