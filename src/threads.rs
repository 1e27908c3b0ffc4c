//! How many threads abreport works with: `ABREPORT_THREADS`, or one per core.
//!
//! The one number behind the async runtime's workers, the files read at once, the gathering of
//! allocations and the experiments analysed at once. No output depends on it (ARCHITECTURE.md,
//! invariants): it only trades time for cores. This module reads the variable, and [`each`]
//! runs a queue of work on that many scoped threads.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::env;

static THREADS: OnceLock<usize> = OnceLock::new();

/// Threads of [`each`] working on an item right now, in the whole process: [`join`] runs its
/// two halves at once only when this leaves a core free.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// `ABREPORT_THREADS` when set (a whole number from 1 to 1024), else the number of cores.
pub fn configured() -> Result<usize, String> {
    match std::env::var(env::THREADS) {
        Ok(text) => parse(&text)
            .ok_or_else(|| format!("{} must be a whole number of threads from 1 to 1024, not `{text}`", env::THREADS)),
        Err(_) => Ok(cores()),
    }
}

fn parse(text: &str) -> Option<usize> {
    text.trim().parse::<usize>().ok().filter(|n| (1..=1024).contains(n))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// The thread count of this process, fixed on first use (an invalid `ABREPORT_THREADS`, which
/// `app` reports before anything runs, counts as unset here).
pub fn count() -> usize {
    *THREADS.get_or_init(|| configured().unwrap_or_else(|_| cores()))
}

/// Runs `work` on every item on up to [`count`] threads, each taking the next item from a
/// shared queue; a thread stops after its first error (the others finish their items). Returns
/// each item's position and outcome, in position order; a thread that panicked loses its items,
/// so fewer outcomes than items means a worker failed.
pub fn each<T: Send, R: Send, E: Send>(
    items: Vec<T>,
    work: impl Fn(T) -> Result<R, E> + Sync,
) -> Vec<(usize, Result<R, E>)> {
    let threads = count().min(items.len().max(1));
    // Popped from the back: the last item first, as the run has always taken them.
    let queue = std::sync::Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    let mut done: Vec<(usize, Result<R, E>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
                        let Some((position, item)) = next else { break };
                        BUSY.fetch_add(1, Ordering::Relaxed);
                        let outcome = work(item);
                        BUSY.fetch_sub(1, Ordering::Relaxed);
                        let failed = outcome.is_err();
                        done.push((position, outcome));
                        if failed {
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    done.sort_by_key(|(position, _)| *position);
    done
}

/// [`each`] for work that cannot fail: every item's result, in item order. A worker that
/// panicked loses its items in `each`; here that is a panic too, never a shorter result.
pub fn map<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let done = each(items, |item| Ok::<R, std::convert::Infallible>(work(item)));
    // `each` drops the items of a worker that panicked; the panic itself was printed.
    assert_eq!(done.len(), n, "a worker thread panicked");
    done.into_iter().map(|(_, Ok(result))| result).collect()
}

/// Runs `a` and `b` at once when a core is free of [`each`]'s work (the last items of a queue,
/// when the other threads have run out), else one after the other, so that work split this
/// way never crowds cores that are busy already. Returns both results; a panic in either is a
/// panic here. Which way it ran changes no result.
pub fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if count() < 2 || BUSY.load(Ordering::Relaxed) >= count() {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let other = scope.spawn(b);
        let first = a();
        (first, other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

#[cfg(test)]
mod tests {
    use super::{join, parse};

    #[test]
    fn join_returns_both_results_in_order_whichever_way_it_ran() {
        let (a, b) = join(|| (1..=10).sum::<u32>(), || "b".repeat(3));
        assert_eq!((a, b.as_str()), (55, "bbb"));
        // Inside a queue's work too, where the cores may be taken.
        let pairs = super::map((0..8u64).collect(), |i| join(|| i * 2, || i + 1));
        assert_eq!(pairs, (0..8).map(|i| (i * 2, i + 1)).collect::<Vec<_>>());
    }

    #[test]
    fn a_thread_count_is_a_whole_number_from_1_to_1024() {
        assert_eq!(parse("1"), Some(1));
        assert_eq!(parse(" 4 "), Some(4));
        assert_eq!(parse("1024"), Some(1024));
        for bad in ["0", "-1", "two", "", "1.5", "1025"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
