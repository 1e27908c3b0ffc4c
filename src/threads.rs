//! How many threads abreport works with: `ABREPORT_THREADS`, or one per core.
//!
//! The one number behind the async runtime's workers, the files read at once, the gathering of
//! allocations and the experiments analysed at once. No output depends on it (ARCHITECTURE.md,
//! invariants): it only trades time for cores. This module reads the variable, and [`each`]
//! runs a queue of work on that many scoped threads.

use std::sync::OnceLock;

use crate::env;

static THREADS: OnceLock<usize> = OnceLock::new();

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
                        let outcome = work(item);
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

#[cfg(test)]
mod tests {
    use super::parse;

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
