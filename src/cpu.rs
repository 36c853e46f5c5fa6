//! How many CPUs this process may use: the one answer behind `threads=0` in the element, the
//! command-line tool and the trainer.
//!
//! A process may run on fewer CPUs than the host has: its affinity mask (`taskset`, `docker
//! --cpuset-cpus`, `sched_setaffinity`) and its cgroup's CPU quota (cgroup v2 `cpu.max`, v1
//! `cpu.cfs_quota_us` / `cpu.cfs_period_us`: Kubernetes CPU limits, `docker --cpus`) both
//! bound it. The standard library's [`std::thread::available_parallelism`] reads both on Linux
//! (the quota rounded down, at least 1), walking the cgroup hierarchy up to the first limit.
//! ONNX Runtime's default pool and candle's default thread count count the host's cores
//! instead, so rsstyle never leaves them to choose.

/// The CPUs this process may use (affinity mask and cgroup quota), at least 1.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `threads`, or [`available`] when it is 0.
pub fn threads_or_available(threads: usize) -> usize {
    if threads == 0 { available() } else { threads }
}

/// The environment variables that size candle's CPU thread pools (`CANDLE_NUM_THREADS`, then
/// `RAYON_NUM_THREADS`, which rayon's global pool reads too), with the values that give them
/// `threads` threads (0: [`available`]); a variable the user set already is left out.
pub fn compute_pool_env(
    threads: usize,
    current: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, String)> {
    let n = threads_or_available(threads).to_string();
    let set = |k: &str| current(k).is_some_and(|v| v.trim().parse::<usize>().is_ok_and(|v| v > 0));
    // An explicit CANDLE_NUM_THREADS or RAYON_NUM_THREADS is the user's choice for both.
    if threads == 0 && (set("CANDLE_NUM_THREADS") || set("RAYON_NUM_THREADS")) {
        return Vec::new();
    }
    ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"]
        .into_iter()
        .filter(|k| threads > 0 || !set(k))
        .map(|k| (k, n.clone()))
        .collect()
}

/// Sizes candle's and rayon's CPU thread pools to `threads` (0: the CPUs this process may
/// use) through their environment variables, before either pool exists. Returns the count.
///
/// # Safety
/// Changes the process environment: call it before starting other threads that might read
/// the environment (`std::env::set_var`'s contract).
pub unsafe fn size_compute_pools(threads: usize) -> usize {
    for (key, value) in compute_pool_env(threads, |k| std::env::var(k).ok()) {
        // SAFETY: the caller guarantees no other thread reads the environment meanwhile.
        unsafe { std::env::set_var(key, value) };
    }
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| threads_or_available(threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_what_the_process_may_use_and_never_less_than_one() {
        assert!(available() >= 1);
        assert_eq!(threads_or_available(0), available());
        assert_eq!(threads_or_available(3), 3);
    }

    #[test]
    fn pool_variables_follow_the_thread_count_unless_the_user_set_them() {
        let none = |_: &str| None;
        let n = available().to_string();
        assert_eq!(
            compute_pool_env(0, none),
            vec![("CANDLE_NUM_THREADS", n.clone()), ("RAYON_NUM_THREADS", n)]
        );
        assert_eq!(
            compute_pool_env(2, none),
            vec![
                ("CANDLE_NUM_THREADS", "2".to_string()),
                ("RAYON_NUM_THREADS", "2".to_string())
            ]
        );
        let user = |k: &str| (k == "RAYON_NUM_THREADS").then(|| "6".to_string());
        assert_eq!(compute_pool_env(0, user), vec![]);
        // An explicit thread count wins over the environment.
        assert_eq!(compute_pool_env(1, user).len(), 2);
        // Unparsable or zero values are not a choice.
        let junk = |_: &str| Some("lots".to_string());
        assert_eq!(compute_pool_env(0, junk).len(), 2);
    }
}
