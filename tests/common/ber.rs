#![allow(dead_code)] // shared by tests and benches, each using part of it
//! SNMP messages built by hand, byte by byte: answers and traps for fuzzing and load, where
//! a real agent cannot be told to send exactly these bytes, or this many this fast.

/// One BER type-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// linkDown and linkUp (snmpTraps.3 and .4), BER-encoded.
pub const LINK_DOWN: [u8; 9] = [0x2b, 6, 1, 6, 3, 1, 1, 5, 3];
pub const LINK_UP: [u8; 9] = [0x2b, 6, 1, 6, 3, 1, 1, 5, 4];

/// A v2c trap: sysUpTime.0, snmpTrapOID.0 = `trap_oid` (BER-encoded arcs), ifIndex.2 = 2.
pub fn v2c_trap(community: &[u8], request_id: u8, trap_oid: &[u8]) -> Vec<u8> {
    let mut varbinds = Vec::new();
    let mut vb = tlv(0x06, &[0x2b, 6, 1, 2, 1, 1, 3, 0]);
    vb.extend(tlv(0x43, &[1, 0]));
    varbinds.extend(tlv(0x30, &vb));
    let mut vb = tlv(0x06, &[0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0]);
    vb.extend(tlv(0x06, trap_oid));
    varbinds.extend(tlv(0x30, &vb));
    let mut vb = tlv(0x06, &[0x2b, 6, 1, 2, 1, 2, 2, 1, 1, 2]);
    vb.extend(tlv(0x02, &[2]));
    varbinds.extend(tlv(0x30, &vb));
    let mut pdu = tlv(0x02, &[request_id & 0x7f]);
    pdu.extend(tlv(0x02, &[0]));
    pdu.extend(tlv(0x02, &[0]));
    pdu.extend(tlv(0x30, &varbinds));
    let mut message = tlv(0x02, &[1]);
    message.extend(tlv(0x04, community));
    message.extend(tlv(0xa7, &pdu));
    tlv(0x30, &message)
}
