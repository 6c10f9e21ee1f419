//! Spreading independent per-client work over worker threads ([`std::thread::scope`], no
//! thread pool and no extra dependency).
//!
//! Results always come back in the order of the inputs, so a caller that folds them in that
//! order gets the same bytes with one worker or many. Each worker takes every `k`-th item
//! (round-robin), which balances lists whose cost drifts along the list (self masks first,
//! then pairwise masks with a key agreement each) without a shared queue.

use std::num::NonZeroUsize;

/// The default number of worker threads: [`std::thread::available_parallelism`], or 1 where
/// it cannot be determined.
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Applies `f` to every item on up to `threads` scoped worker threads and returns the results
/// in the order of `items`. One worker (or at most one item) runs inline, spawning nothing.
///
/// # Panics
/// Re-raises a panic of `f` (after every worker has stopped).
pub(crate) fn map<T, R, F>(threads: NonZeroUsize, items: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let workers = threads.get().min(items.len());
    if workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let mut lanes: Vec<Vec<(usize, T)>> = (0..workers)
        .map(|_| Vec::with_capacity(n.div_ceil(workers)))
        .collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % workers].push((i, item));
    }
    let f = &f;
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| s.spawn(move || lane.into_iter().map(|(i, t)| (i, f(t))).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut slots: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (i, r) in done.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots.into_iter().flatten().collect()
}

/// Runs `work` on up to `threads` workers, worker `w` of `k` getting the items `w`, `w + k`,
/// `w + 2k`, ... of `items` and its own accumulator from `init`; returns the accumulators in
/// worker order (one, built inline, for one worker or at most one item). For order-independent
/// folds such as wrapping sums in `Z_(2^32)`.
///
/// # Panics
/// Re-raises a panic of `init` or `work`.
pub(crate) fn fold<T, A, I, W>(threads: NonZeroUsize, items: &[T], init: I, work: W) -> Vec<A>
where
    T: Sync,
    A: Send,
    I: Fn() -> A + Sync,
    W: Fn(&mut A, &T) + Sync,
{
    let workers = threads.get().min(items.len()).max(1);
    let run = |w: usize| {
        let mut acc = init();
        for item in items.iter().skip(w).step_by(workers) {
            work(&mut acc, item);
        }
        acc
    };
    if workers == 1 {
        return vec![run(0)];
    }
    let run = &run;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|w| s.spawn(move || run(w))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
    }

    #[test]
    fn map_keeps_input_order_for_any_worker_count() {
        let items: Vec<u32> = (0..103).collect();
        let want: Vec<u64> = items.iter().map(|&x| u64::from(x) * 7).collect();
        for threads in [1, 2, 3, 8, 200] {
            let got = map(nz(threads), items.clone(), |x| u64::from(x) * 7);
            assert_eq!(got, want, "threads = {threads}");
        }
        assert!(map(nz(4), Vec::<u32>::new(), |x| x).is_empty());
    }

    #[test]
    fn map_really_uses_several_threads() {
        let ids = map(nz(2), vec![(); 2], |()| std::thread::current().id());
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn fold_visits_every_item_once() {
        let items: Vec<u64> = (1..=1000).collect();
        for threads in [1, 2, 5, 2000] {
            let parts = fold(nz(threads), &items, Vec::new, |acc: &mut Vec<u64>, &x| {
                acc.push(x);
            });
            assert_eq!(parts.len(), threads.min(items.len()));
            let mut all: Vec<u64> = parts.into_iter().flatten().collect();
            all.sort_unstable();
            assert_eq!(all, items, "threads = {threads}");
        }
        assert_eq!(fold(nz(3), &[] as &[u8], || 0u8, |_, _| {}).len(), 1);
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn map_propagates_a_worker_panic() {
        map(nz(2), vec![1, 2, 3], |x| {
            assert!(x != 3, "boom");
            x
        });
    }
}
