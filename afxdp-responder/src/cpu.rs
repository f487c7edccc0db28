//! CPUs: which ones this process may use, the default CPU of each queue's thread, and pinning a
//! thread to one (with the `core_affinity` crate: `sched_getaffinity` / `sched_setaffinity`).

/// The CPUs this process may run on (its affinity mask), in ascending order. If the mask cannot
/// be read, every CPU the standard library counts.
pub fn allowed_cpus() -> Vec<usize> {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => {
            let mut cpus: Vec<usize> = ids.into_iter().map(|id| id.id).collect();
            cpus.sort_unstable();
            cpus
        }
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Default CPU per queue: queue `i` of the list goes to the `i`-th allowed CPU, wrapping around
/// when there are more queues than CPUs (threads then share CPUs; it still works).
pub fn default_cpus(queues: usize, allowed: &[usize]) -> Vec<usize> {
    if allowed.is_empty() {
        return vec![0; queues];
    }
    (0..queues).map(|i| allowed[i % allowed.len()]).collect()
}

/// Pins the calling thread to `cpu`. Returns whether it worked (a CPU outside the affinity
/// mask, or beyond the kernel's CPU set size, cannot be pinned to; the thread then runs where
/// the scheduler puts it).
pub fn pin_current_thread(cpu: usize) -> bool {
    // core_affinity indexes a fixed-size cpu_set_t: keep out-of-range ids away from it.
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cpus_spread_and_wrap() {
        assert_eq!(default_cpus(2, &[0, 1]), vec![0, 1]);
        assert_eq!(default_cpus(3, &[2, 5]), vec![2, 5, 2]);
        assert_eq!(default_cpus(1, &[]), vec![0]);
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn pinning_to_an_allowed_cpu_works_and_to_a_missing_one_fails() {
        let allowed = allowed_cpus();
        let last = *allowed.last().unwrap();
        std::thread::spawn(move || {
            assert!(pin_current_thread(last));
            assert_eq!(allowed_cpus(), vec![last]);
            assert!(!pin_current_thread(4096));
            assert!(!pin_current_thread(usize::MAX));
        })
        .join()
        .unwrap();
    }
}
