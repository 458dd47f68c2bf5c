//! A check as a task runs it: the service it reads from the plan, and the probers that run it.

use std::sync::Arc;
use std::time::Duration;

use crate::document::{CheckParams, Snmp};
use crate::probe::box_health::BoxProber;
use crate::probe::http::HttpProber;
use crate::probe::icmp::IcmpProber;
use crate::probe::plugin::{PluginRunner, Target};
use crate::probe::snmp::SnmpProber;
use crate::probe::tcp::TcpProber;
use crate::probe::{CheckResult, Status};
use crate::rules::Plan;
use crate::settings::{DEFAULT_PLUGIN_DIRS, Limits, Settings};
use crate::store::Store;

/// Runs one check. The daemon's is [`Probers`]; scheduler tests script their own outcomes.
pub trait Runner: Send + Sync + 'static {
    fn run<'a>(&'a self, job: &'a Job)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>>;

    /// A new plan is in force: state kept for devices and services it no longer has goes.
    fn retain_for(&self, _plan: &Plan) {}
}

/// The probers, one per protocol, shared by every check.
pub struct Probers {
    pub icmp: IcmpProber,
    pub snmp: SnmpProber,
    pub http: HttpProber,
    pub tcp: TcpProber,
    pub plugin: PluginRunner,
    pub boxes: BoxProber,
}

impl Probers {
    /// The daemon's probers: `{status}` in an HTTP URL or as a TCP port is the status endpoint, plugins come
    /// from `[plugins] dirs`, the box kind reads the state directory and `store`.
    pub fn for_daemon(settings: &Settings, store: Store) -> Probers {
        let probers = Probers::new(&settings.limits);
        let status_endpoint = crate::settings::local_address(settings.status.listen);
        Probers {
            http: probers.http.with_status_endpoint(status_endpoint),
            tcp: probers.tcp.with_status_endpoint(status_endpoint),
            plugin: PluginRunner::new(settings.plugin_dirs.clone()),
            boxes: BoxProber::new(
                settings.state_dir.clone(),
                Some(store),
                matches!(settings.mode, crate::settings::Mode::Central(_)),
            ),
            ..probers
        }
    }

    pub fn new(limits: &Limits) -> Probers {
        Probers {
            icmp: IcmpProber::new(limits.max_concurrent_icmp as usize),
            snmp: SnmpProber::new(),
            http: HttpProber::new(),
            tcp: TcpProber::new(),
            plugin: PluginRunner::new(DEFAULT_PLUGIN_DIRS.iter().map(std::path::PathBuf::from).collect()),
            // No store: the box kind reports the current directory's filesystem and the host.
            boxes: BoxProber::new(std::path::PathBuf::from("."), None, false),
        }
    }
}

impl Runner for Probers {
    fn run<'a>(
        &'a self,
        job: &'a Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(job.run(self))
    }

    fn retain_for(&self, plan: &Plan) {
        let mut addresses = std::collections::HashSet::new();
        let mut agents = Vec::new();
        let mut http = Vec::new();
        let mut tcp_ca_files = Vec::new();
        let mut series = std::collections::HashSet::new();
        for (s, service) in plan.accepted_services() {
            let Some(device) = s.device.map(|d| &plan.devices[d]) else {
                continue;
            };
            match &service.params {
                CheckParams::Icmp(_) => addresses.extend(device.address.parse::<std::net::IpAddr>().ok()),
                CheckParams::Snmp(_) => {
                    if let Some(snmp) = device.outcome.as_ref().ok().and_then(|d| d.snmp.as_deref()) {
                        agents.push((device.address.as_str(), snmp));
                        series.insert(s.id.as_str());
                    }
                }
                CheckParams::Http(p) => http.push(&**p),
                CheckParams::Tcp(p) => tcp_ca_files.extend(p.ca_file.as_deref()),
                CheckParams::Dns(_) | CheckParams::Plugin(_) | CheckParams::Box(_) | CheckParams::SnmpTrap(_) => {}
            }
        }
        self.icmp.retain(&addresses);
        self.snmp.retain(agents, &series);
        self.http.retain(http);
        self.tcp.retain(tcp_ca_files);
    }
}

/// What a check task needs: its service in the plan, which it holds while it runs.
pub struct Job {
    pub(super) slot: usize,
    pub(super) generation: u64,
    pub service_id: Arc<str>,
    pub(super) plan: Arc<Plan>,
    /// Indices in the plan.
    pub(super) service: usize,
    pub(super) device: usize,
    pub timeout: Duration,
}

impl Job {
    pub fn address(&self) -> &str {
        &self.plan.devices[self.device].address
    }

    fn snmp(&self) -> Option<&Snmp> {
        self.plan.devices[self.device].outcome.as_ref().ok()?.snmp.as_deref()
    }

    fn params(&self) -> Option<&CheckParams> {
        Some(&self.plan.services[self.service].outcome.as_ref().ok()?.params)
    }

    async fn run(&self, probers: &Probers) -> CheckResult {
        // A last bound on top of each probe's own: a check never outlives twice its timeout.
        let bound = self.timeout * 2 + Duration::from_secs(1);
        let check = async {
            match self.params() {
                Some(CheckParams::Icmp(p)) => match crate::probe::resolve(self.address()).await {
                    Ok(ip) => probers.icmp.check(ip, p, self.timeout).await,
                    Err(e) => CheckResult::new(Status::Critical, e),
                },
                Some(CheckParams::Snmp(p)) => match self.snmp() {
                    Some(snmp) => {
                        probers
                            .snmp
                            .check(&self.service_id, self.address(), snmp, p, self.timeout)
                            .await
                    }
                    None => CheckResult::unknown("the device has no snmp settings"),
                },
                Some(CheckParams::Http(p)) => probers.http.check(self.address(), p, self.timeout).await,
                Some(CheckParams::Tcp(p)) => probers.tcp.check(self.address(), p, self.timeout).await,
                Some(CheckParams::Dns(p)) => crate::probe::dns::check(self.address(), p, self.timeout).await,
                Some(CheckParams::Plugin(p)) => {
                    let device = &self.plan.devices[self.device];
                    let target = Target {
                        address: &device.address,
                        name: &device.name,
                        id: &device.id,
                    };
                    probers.plugin.check(&target, p, self.timeout).await
                }
                Some(CheckParams::Box(p)) => probers.boxes.check(p).await,
                // A trap service runs only when its problem clears for lack of new traps
                // (or when an operator asks: a reset).
                Some(CheckParams::SnmpTrap(p)) => CheckResult::new(
                    Status::Ok,
                    match p.clear_after_s {
                        Some(s) => format!("no matching trap for {s} s: cleared"),
                        None => "cleared on request".to_string(),
                    },
                ),
                None => CheckResult::unknown("the service is not in the plan"),
            }
        };
        tokio::time::timeout(bound, check).await.unwrap_or_else(|_| {
            CheckResult::unknown(format!("the check did not end within {}s", bound.as_secs())).took(bound)
        })
    }
}
