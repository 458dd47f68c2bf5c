//! One datagram to one notification: v1 traps (mapped per RFC 3584), v2c traps and informs,
//! v3 traps and informs with the sender's USM credentials. snmp2 reads the messages; here
//! they become owned values, and every way a datagram can be wrong has its name.

use std::net::IpAddr;

use snmp2::{MessageType, Pdu, Value};

use crate::document::params::ObjectId;

/// snmpTrapOID.0: a v2c/v3 notification's OID is this variable binding's value.
const SNMP_TRAP_OID: &str = "1.3.6.1.6.3.1.1.4.1.0";
/// sysUpTime.0, the first variable binding of a v2c/v3 notification.
const SYS_UP_TIME: &str = "1.3.6.1.2.1.1.3.0";
/// snmpTraps: v1 generic traps 0 to 5 are `snmpTraps.(generic + 1)` (RFC 3584 §3.1).
const SNMP_TRAPS: &str = "1.3.6.1.6.3.1.1.5";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2c,
    V3,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2c => "v2c",
            Version::V3 => "v3",
        }
    }
}

/// A notification, read and authenticated.
#[derive(Debug, Clone)]
pub struct Trap {
    pub version: Version,
    pub trap_oid: ObjectId,
    /// Besides sysUpTime.0 and snmpTrapOID.0: (OID, value as text).
    pub varbinds: Vec<(ObjectId, String)>,
}

/// Why a datagram is not a notification the box takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not SNMP, cut short, or not a notification.
    Malformed(String),
    /// A wrong community, user or key: never matched.
    BadAuth(String),
}

/// The version of a datagram, read from its first bytes.
pub fn version_of(datagram: &[u8]) -> Result<Version, Refused> {
    let mut outer = snmp2::AsnReader::from_bytes(datagram);
    let seq = outer
        .read_raw(snmp2::asn1::TYPE_SEQUENCE)
        .map_err(|e| malformed("not an SNMP message", &e))?;
    match snmp2::AsnReader::from_bytes(seq).read_asn_integer() {
        Ok(0) => Ok(Version::V1),
        Ok(1) => Ok(Version::V2c),
        Ok(3) => Ok(Version::V3),
        Ok(other) => Err(Refused::Malformed(format!("SNMP version number {other} is not known"))),
        Err(e) => Err(malformed("no SNMP version", &e)),
    }
}

fn malformed(what: &str, e: &snmp2::Error) -> Refused {
    Refused::Malformed(format!("{what} ({})", crate::probe::snmp::describe(e)))
}

/// A v1 or v2c message, read once: its agent address (v1 traps carry one, and the sender may
/// be known by it) before its community is checked against each candidate sender's.
pub struct CommunityMessage<'a>(Pdu<'a>);

impl<'a> CommunityMessage<'a> {
    pub fn read(datagram: &'a [u8]) -> Result<CommunityMessage<'a>, Refused> {
        Pdu::from_bytes(datagram)
            .map(CommunityMessage)
            .map_err(|e| malformed("unreadable", &e))
    }

    pub fn agent(&self) -> Option<IpAddr> {
        self.0.v1_trap_info.as_ref().map(|t| t.agent_addr)
    }

    /// The notification, if the message carries `community`.
    pub fn with_community(&self, community: &[u8]) -> Result<Trap, Refused> {
        // Compared in constant time: the community is a password.
        if !crate::secret::same(community, self.0.community) {
            return Err(Refused::BadAuth("wrong community".into()));
        }
        let version = match self.0.version() {
            Ok(snmp2::Version::V1) => Version::V1,
            _ => Version::V2c,
        };
        notification(&self.0, version)
    }

    /// The answer to a v2c INFORM: a Response with its request id and variable bindings.
    pub fn inform_response(&self) -> Option<Vec<u8>> {
        if self.0.message_type != MessageType::InformRequest {
            return None;
        }
        let mut pdu = self.0.clone();
        pdu.message_type = MessageType::Response;
        pdu.to_bytes().ok()
    }
}

/// A v3 notification, authenticated (and decrypted) with `security`, which learns the
/// sender's engine on its first message.
pub fn with_security(datagram: &mut [u8], security: &mut snmp2::v3::Security) -> Result<Trap, Refused> {
    match Pdu::from_bytes_with_security(datagram, Some(security)) {
        Ok(pdu) => notification(&pdu, Version::V3),
        Err(e @ (snmp2::Error::AuthFailure(_) | snmp2::Error::AuthUpdated | snmp2::Error::CommunityMismatch)) => {
            Err(Refused::BadAuth(crate::probe::snmp::describe(&e)))
        }
        Err(e) => Err(malformed("unreadable", &e)),
    }
}

/// A v3 notification's PDU (its whole TLV), already authenticated and decrypted by the box's
/// engine: read as the PDU of a v2c message, which it is in all but its wrapping.
pub fn scoped(pdu: &[u8]) -> Result<Trap, Refused> {
    let wrapped = super::engine::tlv(0x30, &[&[0x02, 0x01, 0x01, 0x04, 0x00][..], pdu].concat());
    let read = Pdu::from_bytes(&wrapped).map_err(|e| malformed("unreadable", &e))?;
    notification(&read, Version::V3)
}

fn notification(pdu: &Pdu<'_>, version: Version) -> Result<Trap, Refused> {
    match pdu.message_type {
        MessageType::TrapV1 | MessageType::Trap | MessageType::InformRequest => {}
        other => return Err(Refused::Malformed(format!("a {other:?}, not a notification"))),
    }
    let mut varbinds = Vec::new();
    let mut trap_oid = None;
    for (oid, value) in pdu.varbinds.clone() {
        let id = oid.to_id_string();
        match id.as_str() {
            SNMP_TRAP_OID => match &value {
                Value::ObjectIdentifier(o) => trap_oid = Some(oid_of(&o.to_id_string())?),
                _ => return Err(Refused::Malformed("snmpTrapOID.0 is not an OID".into())),
            },
            SYS_UP_TIME => {}
            _ => varbinds.push((oid_of(&id)?, crate::probe::snmp::value_text(&value))),
        }
    }
    let trap_oid = match &pdu.v1_trap_info {
        Some(v1) => v1_trap_oid(&v1.enterprise.to_id_string(), v1.generic_trap, v1.specific_trap)?,
        None => trap_oid.ok_or_else(|| Refused::Malformed("no snmpTrapOID.0 in the notification".into()))?,
    };
    Ok(Trap {
        version,
        trap_oid,
        varbinds,
    })
}

/// RFC 3584 §3.1: a v1 trap's notification OID.
fn v1_trap_oid(enterprise: &str, generic: i64, specific: i64) -> Result<ObjectId, Refused> {
    match generic {
        0..=5 => oid_of(&format!("{SNMP_TRAPS}.{}", generic + 1)),
        6 if specific >= 0 => oid_of(&format!("{enterprise}.0.{specific}")),
        _ => Err(Refused::Malformed(format!(
            "v1 generic trap {generic} (specific {specific}) is not valid"
        ))),
    }
}

fn oid_of(text: &str) -> Result<ObjectId, Refused> {
    text.parse()
        .map_err(|_| Refused::Malformed(format!("{text:?} is not an OID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_traps_map_to_notification_oids_per_rfc_3584() {
        let link_down = v1_trap_oid("1.3.6.1.4.1.8072.3.2.10", 2, 0).expect("generic");
        assert_eq!(link_down.to_string(), "1.3.6.1.6.3.1.1.5.3");
        let specific = v1_trap_oid("1.3.6.1.4.1.9", 6, 17).expect("specific");
        assert_eq!(specific.to_string(), "1.3.6.1.4.1.9.0.17");
        assert!(v1_trap_oid("1.3.6.1.4.1.9", 7, 0).is_err());
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        for datagram in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x02\x01",
            b"\x30\x03\x02\x01\x07",
            b"hello world",
        ] {
            assert!(
                matches!(version_of(datagram), Err(Refused::Malformed(_))),
                "{datagram:?}"
            );
        }
    }
}
