//! The category a census suggests for a host (R18), from what it said of itself: first its
//! sysObjectID's enterprise (who made it), then words of its sysDescr, then its open ports;
//! `other` when nothing tells. A suggestion for the technician, who may correct it in the
//! document. docs/CENSUS.md lists the rules.

use crate::document::Category;

use super::SnmpFound;

/// IANA enterprise numbers (1.3.6.1.4.1.N) whose devices are of one category.
const ENTERPRISES: &[(u32, Category)] = &[
    // Firewalls: Fortinet, Palo Alto, Check Point, SonicWall, WatchGuard, Stormshield, Sophos.
    (12356, Category::Firewall),
    (25461, Category::Firewall),
    (2620, Category::Firewall),
    (8741, Category::Firewall),
    (3097, Category::Firewall),
    (11256, Category::Firewall),
    (21067, Category::Firewall),
    // Network: Cisco, Juniper, HPE Aruba/ProCurve, Extreme, Netgear, MikroTik, Ubiquiti,
    // TP-Link, Huawei, Alcatel-Lucent Enterprise, D-Link, Zyxel, Ruckus, Allied Telesis.
    (9, Category::Network),
    (2636, Category::Network),
    (14823, Category::Network),
    (1916, Category::Network),
    (4526, Category::Network),
    (14988, Category::Network),
    (41112, Category::Network),
    (11863, Category::Network),
    (2011, Category::Network),
    (6486, Category::Network),
    (171, Category::Network),
    (890, Category::Network),
    (25053, Category::Network),
    (207, Category::Network),
    // UPS: APC, Eaton (Powerware, MGE), Riello, Socomec, Liebert/Vertiv.
    (318, Category::Ups),
    (534, Category::Ups),
    (705, Category::Ups),
    (5491, Category::Ups),
    (4555, Category::Ups),
    (476, Category::Ups),
    // Storage: Synology, QNAP, NetApp, Western Digital, Buffalo.
    (6574, Category::Storage),
    (24681, Category::Storage),
    (789, Category::Storage),
    (5127, Category::Storage),
    (5227, Category::Storage),
    // Printers: Xerox, Ricoh, Lexmark, Kyocera, Brother, Canon, Epson, Sharp, Konica Minolta, OKI.
    (253, Category::Printer),
    (367, Category::Printer),
    (641, Category::Printer),
    (1347, Category::Printer),
    (2435, Category::Printer),
    (1602, Category::Printer),
    (1248, Category::Printer),
    (2385, Category::Printer),
    (18334, Category::Printer),
    (2001, Category::Printer),
    // Phones: Polycom, Yealink, Snom, Grandstream.
    (13885, Category::Phone),
    (37459, Category::Phone),
    (1526, Category::Phone),
    (42397, Category::Phone),
];

/// Words of sysDescr (lower case), most telling first.
const WORDS: &[(&str, Category)] = &[
    ("adaptive security appliance", Category::Firewall),
    ("fortigate", Category::Firewall),
    ("pan-os", Category::Firewall),
    ("sonicwall", Category::Firewall),
    ("pfsense", Category::Firewall),
    ("opnsense", Category::Firewall),
    ("firewall", Category::Firewall),
    ("laserjet", Category::Printer),
    ("jetdirect", Category::Printer),
    ("officejet", Category::Printer),
    ("printer", Category::Printer),
    ("smart-ups", Category::Ups),
    ("ups", Category::Ups),
    ("synology", Category::Storage),
    ("qnap", Category::Storage),
    ("netapp", Category::Storage),
    ("nas", Category::Storage),
    ("ip phone", Category::Phone),
    ("voip", Category::Phone),
    ("switch", Category::Network),
    ("router", Category::Network),
    ("routeros", Category::Network),
    ("junos", Category::Network),
    ("cisco ios", Category::Network),
    ("access point", Category::Network),
    ("windows server", Category::Server),
    ("windows", Category::Workstation),
    ("linux", Category::Server),
    ("freebsd", Category::Server),
    ("vmware esx", Category::Server),
];

/// Ports that tell, most telling first: printing, SIP, then servers' services.
const PORTS: &[(&[u16], Category)] = &[
    (&[9100, 515, 631], Category::Printer),
    (&[5060, 5061], Category::Phone),
    (&[22, 25, 53, 80, 443, 445, 1433, 3306, 3389, 5432], Category::Server),
];

pub fn suggest(snmp: Option<&SnmpFound>, open_ports: &[u16]) -> Category {
    if let Some(snmp) = snmp {
        if let Some(category) = snmp.sys_object_id.as_deref().and_then(by_enterprise) {
            // A maker's firewall or switch says so in its description (Cisco's ASA).
            return by_words(snmp.sys_descr.as_deref())
                .filter(|w| *w == Category::Firewall)
                .unwrap_or(category);
        }
        if let Some(category) = by_words(snmp.sys_descr.as_deref()) {
            return category;
        }
    }
    PORTS
        .iter()
        .find(|(ports, _)| ports.iter().any(|p| open_ports.contains(p)))
        .map_or(Category::Other, |(_, c)| *c)
}

fn by_enterprise(object_id: &str) -> Option<Category> {
    let number: u32 = object_id
        .trim_start_matches('.')
        .strip_prefix("1.3.6.1.4.1.")?
        .split('.')
        .next()?
        .parse()
        .ok()?;
    ENTERPRISES.iter().find(|(n, _)| *n == number).map(|(_, c)| *c)
}

fn by_words(descr: Option<&str>) -> Option<Category> {
    let descr = descr?.to_lowercase();
    // Whole words only for the short ones ("ups" is in "groups", "nas" in "dynasty").
    let words: Vec<&str> = descr.split(|c: char| !c.is_alphanumeric() && c != '-').collect();
    WORDS
        .iter()
        .find(|(word, _)| {
            if word.contains(' ') || word.len() > 4 {
                descr.contains(word)
            } else {
                words.contains(word)
            }
        })
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(object_id: &str, descr: &str) -> SnmpFound {
        SnmpFound {
            version: "2c".into(),
            community: Some(1),
            user: None,
            sys_name: None,
            sys_descr: Some(descr.into()),
            sys_object_id: Some(object_id.into()),
            sys_location: None,
            sys_contact: None,
            interfaces: Vec::new(),
        }
    }

    #[test]
    fn the_maker_then_the_description_then_the_ports_tell_the_category() {
        let c3560 = found("1.3.6.1.4.1.9.1.563", "Cisco IOS Software, C3560 Software");
        assert_eq!(suggest(Some(&c3560), &[]), Category::Network);
        let asa = found("1.3.6.1.4.1.9.1.745", "Cisco Adaptive Security Appliance Version 9.8");
        assert_eq!(suggest(Some(&asa), &[443]), Category::Firewall);
        let linux = found("1.3.6.1.4.1.8072.3.2.10", "Linux host 6.1.0-18-amd64 #1 SMP x86_64");
        assert_eq!(suggest(Some(&linux), &[]), Category::Server);
        let apc = found("1.3.6.1.4.1.318.1.3.27", "APC Web/SNMP Management Card");
        assert_eq!(suggest(Some(&apc), &[80]), Category::Ups);
        let groups = found("1.3.6.1.4.1.99999.1", "managed groups controller");
        assert_eq!(
            suggest(Some(&groups), &[9100]),
            Category::Printer,
            "'ups' inside a word does not count"
        );
        assert_eq!(suggest(None, &[5060]), Category::Phone);
        assert_eq!(suggest(None, &[22, 9100]), Category::Printer);
        assert_eq!(suggest(None, &[3389]), Category::Server);
        assert_eq!(suggest(None, &[]), Category::Other);
    }
}
