//! Where each shard runs: `nbthread` and `cpu-map` resolved against the CPUs this process may use.
//! Pure logic.

use ringlb_config::model::CpuMap;

/// The CPUs the process may run on (sched_getaffinity), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = this thread; size matches the set.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return vec![0];
    }
    // SAFETY: CPU_ISSET reads the set we own.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
        .collect();
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

fn expand(ranges: &[(u32, u32)]) -> Vec<u32> {
    ranges.iter().flat_map(|(a, b)| *a..=*b).collect()
}

/// The CPU set of each shard (index = shard = HAProxy thread id − 1), following HAProxy 2.6:
/// - `cpu-map 1/3 2`: thread 3 on CPU 2; `cpu-map 1/all 0-3` or `cpu-map 1 0-3`: every thread
///   may run on CPUs 0–3;
/// - `cpu-map auto:1/1-4 0-3`: threads 1–4 take CPUs 0–3 one each, in order;
/// - a thread no line names is pinned to the i-th allowed CPU (ringlb's default: one shard per
///   core), wrapping around when there are more shards than CPUs.
pub fn shard_cpus(nbthread: usize, maps: &[CpuMap], allowed: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nbthread];
    for m in maps {
        let threads: Vec<u32> = if m.threads.is_empty() {
            (1..=nbthread as u32).collect()
        } else {
            expand(&m.threads)
        };
        let cpus: Vec<usize> = expand(&m.cpus).into_iter().map(|c| c as usize).collect();
        if m.auto {
            for (t, cpu) in threads.iter().zip(cpus.iter()) {
                if let Some(slot) = out.get_mut((*t as usize).wrapping_sub(1)) {
                    *slot = vec![*cpu];
                }
            }
        } else {
            for t in threads {
                if let Some(slot) = out.get_mut((t as usize).wrapping_sub(1)) {
                    *slot = cpus.clone();
                }
            }
        }
    }
    for (i, slot) in out.iter_mut().enumerate() {
        if slot.is_empty() && !allowed.is_empty() {
            if let Some(cpu) = allowed.get(i % allowed.len()) {
                slot.push(*cpu);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringlb_config::model::Loc;

    fn map(auto: bool, threads: &[(u32, u32)], cpus: &[(u32, u32)]) -> CpuMap {
        CpuMap {
            loc: Loc::default(),
            auto,
            process: Some("1".into()),
            threads: threads.to_vec(),
            cpus: cpus.to_vec(),
        }
    }

    #[test]
    fn default_pins_one_shard_per_allowed_cpu() {
        assert_eq!(shard_cpus(2, &[], &[0, 1]), vec![vec![0], vec![1]]);
        assert_eq!(shard_cpus(3, &[], &[2, 5]), vec![vec![2], vec![5], vec![2]]);
    }

    #[test]
    fn auto_maps_threads_to_cpus_in_order() {
        // The guide: `cpu-map auto:1/1-4 0-3`.
        let m = map(true, &[(1, 4)], &[(0, 3)]);
        assert_eq!(
            shard_cpus(4, &[m], &[0, 1]),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
    }

    #[test]
    fn single_thread_single_cpu() {
        // The bench: `cpu-map 1/1 0` with nbthread 1.
        let m = map(false, &[(1, 1)], &[(0, 0)]);
        assert_eq!(shard_cpus(1, &[m], &[0, 1]), vec![vec![0]]);
    }

    #[test]
    fn all_threads_on_a_set() {
        let m = map(false, &[], &[(0, 1)]);
        assert_eq!(shard_cpus(2, &[m], &[0, 1]), vec![vec![0, 1], vec![0, 1]]);
    }

    #[test]
    fn unmapped_threads_get_defaults_and_out_of_range_threads_are_ignored() {
        let m = map(false, &[(2, 2), (9, 9)], &[(1, 1)]);
        assert_eq!(shard_cpus(2, &[m], &[0, 1]), vec![vec![0], vec![1]]);
    }
}
