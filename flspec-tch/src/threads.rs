//! How many CPU threads libtorch uses, and a default that shares the cores among collaborators
//! training at once.

/// The CPU cores this process may use (`std::thread::available_parallelism`: affinity masks and
/// cgroup quotas count), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The default libtorch threads per operation when `parallel_workers` collaborators train at
/// once on `cores` cores: the cores shared among the workers, at least 1
/// (`max(1, cores / parallel_workers)`), so that the workers together use every core without
/// oversubscribing them (PyTorch's own default is every core for one training loop).
///
/// Measured with `secagg_mnist` (2 collaborators, 2 rounds, bundled data, release build) on a
/// 2-core Intel Xeon VM, interleaved, median round time of 16 runs while the machine was quiet
/// (load below 1.5): one after the other, 0.53 s with 2 threads against 0.73 s with 1; with
/// `--parallel 2`, 0.44 s with 1 thread each against 0.93 s with 2. On the same machine busy with
/// other builds (load 6 to 8), 2 threads one after the other took 19–21 s rounds against 1.9–2.0 s
/// with 1: OpenMP threads wait at every operation's barrier for a thread the kernel descheduled.
pub fn default_num_threads(cores: usize, parallel_workers: usize) -> usize {
    (cores / parallel_workers.max(1)).max(1)
}

/// Sets the number of CPU threads libtorch uses within an operation (process-wide).
pub fn set_num_threads(threads: usize) {
    tch::set_num_threads(i32::try_from(threads.max(1)).unwrap_or(i32::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threads_share_the_cores_among_parallel_workers() {
        assert_eq!(default_num_threads(2, 1), 2);
        assert_eq!(default_num_threads(2, 2), 1);
        assert_eq!(default_num_threads(16, 3), 5);
        assert_eq!(default_num_threads(2, 4), 1, "never below 1");
        assert_eq!(default_num_threads(1, 0), 1, "0 workers count as 1");
        assert!(available_cores() >= 1);
    }
}
