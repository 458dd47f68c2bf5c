//! The `box` kind (protocol.md §3): the box watching itself, like ServiceNav's template of the
//! box's self-supervision. CPU and memory from `/proc`, the state directory's filesystem, and
//! the outbox: its fill and, on a paired box, the age of the oldest record the central server
//! has not acknowledged, with the clock offset seen by the last heartbeat. The store is only
//! asked for its counters.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{CheckResult, Status, Thresholds};
use crate::document::params::{BoxParams, Limit};
use crate::store::Store;

/// The link to the central server, as the box kind reads it.
pub trait Uplink: Send + Sync {
    /// Box clock minus server clock at the last heartbeat; `None` before the first.
    fn clock_offset_s(&self) -> Option<f64>;
}

/// CPU time counters from `/proc/stat`: (busy, total) in ticks.
type CpuTicks = (u64, u64);

/// A reading of the counters and when it was taken.
type CpuSample = (std::time::Instant, CpuTicks);

/// The shortest span the CPU is measured over: since the previous check when it is older,
/// else a sample this long (the first check, or two box services checked together).
const MIN_SPAN: Duration = Duration::from_millis(250);

pub struct BoxProber {
    state_dir: PathBuf,
    store: Option<Store>,
    /// Set once the daemon pairs its syncer; a standalone box has none.
    uplink: OnceLock<Arc<dyn Uplink>>,
    paired: bool,
    last_cpu: Mutex<Option<CpuSample>>,
}

/// What the box measures of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gauge {
    Cpu,
    Memory,
    Disk,
    Buffer,
    UnsentAge,
    ClockOffset,
}

impl Gauge {
    /// The metric's name (the check's perfdata, and its `params` key).
    fn metric(self) -> &'static str {
        match self {
            Gauge::Cpu => "cpu_pct",
            Gauge::Memory => "memory_pct",
            Gauge::Disk => "disk_pct",
            Gauge::Buffer => "buffer_pct",
            Gauge::UnsentAge => "unsent_age_s",
            Gauge::ClockOffset => "clock_offset_s",
        }
    }

    /// As an output names it.
    fn label(self) -> &'static str {
        match self {
            Gauge::Cpu => "cpu",
            Gauge::Memory => "memory",
            Gauge::Disk => "disk",
            Gauge::Buffer => "buffer",
            Gauge::UnsentAge => "unsent",
            Gauge::ClockOffset => "clock offset",
        }
    }

    /// A value as an output shows it: `43.0 %`, `3 s`, `+0.2 s`.
    fn amount(self, value: f64) -> String {
        match self {
            Gauge::ClockOffset => format!("{value:+.1} s"),
            Gauge::UnsentAge => format!("{value:.0} s"),
            _ => format!("{value:.1} %"),
        }
    }

    /// `memory 43.0 %`.
    fn shown(self, value: f64) -> String {
        format!("{} {}", self.label(), self.amount(value))
    }
}

/// One measure: its value, or why there is none.
struct Measure {
    gauge: Gauge,
    value: Reading,
    limit: Limit,
}

enum Reading {
    Value(f64),
    /// Nothing to measure here (standalone, no store, no heartbeat yet).
    NotHere(String),
    /// It should be measurable and is not: the check is unknown.
    Failed(String),
}

impl From<Result<f64, String>> for Reading {
    fn from(read: Result<f64, String>) -> Reading {
        read.map_or_else(Reading::Failed, Reading::Value)
    }
}

impl BoxProber {
    /// `store` is `None` where no store runs (`snbox probe box` reads the state directory only).
    pub fn new(state_dir: PathBuf, store: Option<Store>, paired: bool) -> BoxProber {
        BoxProber {
            state_dir,
            store,
            uplink: OnceLock::new(),
            paired,
            last_cpu: Mutex::new(None),
        }
    }

    /// The syncer's link, once it exists.
    pub fn set_uplink(&self, uplink: Arc<dyn Uplink>) {
        let _ = self.uplink.set(uplink);
    }

    pub async fn check(&self, p: &BoxParams) -> CheckResult {
        let started = std::time::Instant::now();
        let measures = self.measure(p).await;
        let mut status = Status::Ok;
        let mut parts = Vec::new();
        let mut crossed = Vec::new();
        let mut result_metrics = Vec::new();
        for m in &measures {
            match &m.value {
                Reading::Value(value) => {
                    let judged = Thresholds {
                        warn: m.limit.warn,
                        crit: m.limit.crit,
                        below: false,
                    }
                    .judge(if m.gauge == Gauge::ClockOffset {
                        value.abs()
                    } else {
                        *value
                    });
                    let text = m.gauge.shown(*value);
                    if judged != Status::Ok {
                        let limit = if judged == Status::Critical {
                            m.limit.crit
                        } else {
                            m.limit.warn
                        };
                        // The clock is judged either way: its limit has no sign.
                        let limit = limit.map_or_else(String::new, |l| m.gauge.amount(l).replace('+', "±"));
                        crossed.push((judged, format!("{text} (over {limit})")));
                    } else {
                        parts.push(text);
                    }
                    status = status.worst(judged);
                    result_metrics.push((m.gauge.metric(), *value));
                }
                Reading::NotHere(why) => parts.push(format!("{}: {why}", m.gauge.label())),
                Reading::Failed(why) => {
                    status = status.worst(Status::Unknown);
                    crossed.push((Status::Unknown, format!("{}: {why}", m.gauge.label())));
                }
            }
        }
        // The worst first, then the others in their usual order.
        crossed.sort_by_key(|(judged, _)| match judged {
            Status::Critical => 0,
            Status::Unknown => 1,
            _ => 2,
        });
        let output = crossed
            .into_iter()
            .map(|(_, text)| text)
            .chain(parts)
            .collect::<Vec<_>>()
            .join(", ");
        let result = CheckResult::new(status, output).took(started.elapsed());
        result_metrics.into_iter().fold(result, |r, (name, value)| {
            r.metric(name, (value * 100.0).round() / 100.0)
        })
    }

    async fn measure(&self, p: &BoxParams) -> Vec<Measure> {
        let stats = match &self.store {
            Some(store) => Some(
                store
                    .stats()
                    .await
                    .map_err(|e| format!("the store does not answer ({e})")),
            ),
            None => None,
        };
        let buffer = match &stats {
            None => Reading::NotHere("no store here".into()),
            Some(Err(why)) => Reading::Failed(why.clone()),
            Some(Ok(s)) if s.cap_bytes == 0 => Reading::Failed("the outbox has no cap".into()),
            Some(Ok(s)) => Reading::Value(s.bytes as f64 * 100.0 / s.cap_bytes as f64),
        };
        let unsent = match &stats {
            _ if !self.paired => Reading::NotHere("standalone, nothing is sent".into()),
            None => Reading::NotHere("no store here".into()),
            Some(Err(why)) => Reading::Failed(why.clone()),
            Some(Ok(s)) => Reading::Value(s.oldest_ts.map_or(0.0, |oldest| {
                let now = jiff::Timestamp::now().as_millisecond();
                (now - oldest).max(0) as f64 / 1000.0
            })),
        };
        let clock = match self.uplink.get().and_then(|u| u.clock_offset_s()) {
            _ if !self.paired => Reading::NotHere("standalone, no central server".into()),
            Some(offset) => Reading::Value(offset),
            None => Reading::NotHere("not known before the first heartbeat".into()),
        };
        let measure = |gauge, value, limit| Measure { gauge, value, limit };
        vec![
            measure(Gauge::Cpu, self.cpu_pct().await.into(), p.cpu_pct),
            measure(Gauge::Memory, memory_pct().into(), p.memory_pct),
            measure(Gauge::Disk, disk_pct(&self.state_dir).into(), p.disk_pct),
            measure(Gauge::Buffer, buffer, p.buffer_pct),
            measure(Gauge::UnsentAge, unsent, p.unsent_age_s),
            measure(Gauge::ClockOffset, clock, p.clock_offset_s),
        ]
    }

    /// The whole box's CPU use since the previous check (or over [`MIN_SPAN`]).
    async fn cpu_pct(&self) -> Result<f64, String> {
        let last = *self.last_cpu.lock().unwrap_or_else(|e| e.into_inner());
        let previous = match last {
            Some((at, ticks)) if at.elapsed() >= MIN_SPAN => ticks,
            _ => {
                let first = cpu_ticks()?;
                tokio::time::sleep(MIN_SPAN).await;
                first
            }
        };
        let now = cpu_ticks()?;
        *self.last_cpu.lock().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), now));
        let (busy, total) = (now.0.saturating_sub(previous.0), now.1.saturating_sub(previous.1));
        if total == 0 {
            return Ok(0.0);
        }
        Ok(busy as f64 * 100.0 / total as f64)
    }
}

/// The `cpu` line of `/proc/stat`: idle and iowait are not busy.
fn cpu_ticks() -> Result<CpuTicks, String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    cpu_ticks_of(&stat).ok_or_else(|| "/proc/stat has no cpu line".to_string())
}

fn cpu_ticks_of(stat: &str) -> Option<CpuTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied()? + ticks.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Memory in use: what is not available to new programs without swapping.
fn memory_pct() -> Result<f64, String> {
    let info = std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    memory_pct_of(&info).ok_or_else(|| "/proc/meminfo lacks MemTotal or MemAvailable".to_string())
}

fn memory_pct_of(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    (total > 0.0).then(|| (total - available).max(0.0) * 100.0 / total)
}

/// The state directory's filesystem, used as `df` counts it (room kept for root excluded).
fn disk_pct(state_dir: &std::path::Path) -> Result<f64, String> {
    let fs = rustix::fs::statvfs(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let used = fs.f_blocks.saturating_sub(fs.f_bfree);
    let usable = used + fs.f_bavail;
    if usable == 0 {
        return Ok(0.0);
    }
    Ok(used as f64 * 100.0 / usable as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_are_read_from_procs_text() {
        let stat = "cpu  100 10 50 800 40 5 5 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_ticks_of(stat), Some((170, 1010)));
        let info = "MemTotal:        1000 kB\nMemFree:  100 kB\nMemAvailable:     250 kB\n";
        assert_eq!(memory_pct_of(info), Some(75.0));
        assert_eq!(memory_pct_of("MemTotal: 10 kB\n"), None);
    }
}
