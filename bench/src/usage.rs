//! The server's resource use during a run, read from `/proc`: the highest
//! resident set size (`VmRSS`, sampled) and the CPU time (`utime + stime`)
//! spent, as a percentage of one core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, which Linux
/// fixes at 100 for user space on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub max_rss_mb: f64,
    pub cpu_percent: f64,
}

/// Samples one process on a thread until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
    pid: u32,
    started: Instant,
    ticks: u64,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || max_rss_kb(pid, &stop)
        });
        Self { stop, thread, pid, started: Instant::now(), ticks: cpu_ticks(pid).unwrap_or(0) }
    }

    pub fn finish(self) -> Usage {
        let ticks = cpu_ticks(self.pid).unwrap_or(self.ticks).saturating_sub(self.ticks);
        let elapsed = self.started.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::Relaxed);
        let max_rss_kb = self.thread.join().unwrap_or(0);
        Usage {
            max_rss_mb: max_rss_kb as f64 / 1024.0,
            cpu_percent: ticks as f64 / TICKS_PER_SECOND / elapsed * 100.0,
        }
    }
}

fn max_rss_kb(pid: u32, stop: &AtomicBool) -> u64 {
    let mut max = 0;
    while !stop.load(Ordering::Relaxed) {
        max = max.max(rss_kb(pid).unwrap_or(0));
        std::thread::sleep(SAMPLE_EVERY);
    }
    max.max(rss_kb(pid).unwrap_or(0))
}

/// `VmRSS` from `/proc/<pid>/status`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `utime + stime` from `/proc/<pid>/stat`, all threads, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; fields after it are plain.
    // Counting from field 3 (state) as 0, utime and stime are 11 and 12.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
    }

    #[test]
    fn this_process_is_visible() {
        let pid = std::process::id();
        assert!(rss_kb(pid).is_some_and(|kb| kb > 0));
        assert!(cpu_ticks(pid).is_some());
    }
}
