//! A census as text for a terminal: one line per host, then its interfaces.

use std::fmt::Write as _;

use super::Report;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} address(es) in {}: {} looked at, {} answered{} in {:.1} s",
        report.addresses,
        report.ranges.join(", "),
        report.probed,
        report.hosts.len(),
        if report.complete {
            ""
        } else {
            " (cut short: the census timed out or was stopped)"
        },
        report.duration_ms as f64 / 1000.0
    );
    if let Some(why) = &report.icmp_error {
        let _ = writeln!(
            out,
            "no ICMP echo could be sent ({why}): every address was tried with SNMP and TCP"
        );
    }
    if report.hosts.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<40} {:>8}  {:<11} {:<10} {:<24} {:<16} DESCRIPTION",
        "ADDRESS", "RTT ms", "CATEGORY", "SNMP", "NAME", "PORTS"
    );
    for host in &report.hosts {
        let rtt = host.rtt_ms.map_or("-".into(), |r| format!("{r:.2}"));
        let snmp = host
            .snmp
            .as_ref()
            .map_or("-".into(), |s| match (&s.community, &s.user) {
                (Some(i), _) => format!("v{} #{i}", s.version),
                (_, Some(user)) => format!("v3 {user}"),
                _ => format!("v{}", s.version),
            });
        let name = host.snmp.as_ref().and_then(|s| s.sys_name.clone()).unwrap_or_default();
        let descr = host
            .snmp
            .as_ref()
            .and_then(|s| s.sys_descr.as_deref())
            .map(|d| {
                d.lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(60)
                    .collect::<String>()
            })
            .unwrap_or_default();
        let ports = host.open_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let _ = writeln!(
            out,
            "{:<40} {:>8}  {:<11} {:<10} {:<24} {:<16} {}",
            host.address.to_string(),
            rtt,
            host.category.as_str(),
            snmp,
            name,
            if ports.is_empty() { "-".into() } else { ports },
            descr
        );
        if let Some(snmp) = &host.snmp {
            for i in &snmp.interfaces {
                let speed = i
                    .speed_bps
                    .filter(|b| *b > 0)
                    .map(|b| format!("{} Mbit/s", b / 1_000_000))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    if {:<5} {:<24} {:<10} {:<14} {}",
                    i.index,
                    i.name.as_deref().or(i.descr.as_deref()).unwrap_or("?"),
                    i.oper_status.as_deref().unwrap_or("?"),
                    speed,
                    i.alias.as_deref().unwrap_or("")
                );
            }
        }
    }
    out
}
