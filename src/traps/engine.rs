//! The box as the authoritative SNMPv3 engine (RFC 3414) for the one message sent to it: an
//! INFORM. Its sender first asks for the box's engine id, boots and time (the box answers
//! with a Report), then sends the INFORM with keys localized to that engine; the box checks
//! it here and answers with a Response carrying the INFORM's msgID and request id.
//! (v3 traps come from their sender's own engine: snmp2 reads those, see decode.rs.)
//!
//! The engine id is made at the first start and kept in the state directory with the boots,
//! which grow by one at each start: a sender that kept the box's time from before a restart
//! is told it is out of the time window and learns the new one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use snmp2::AsnReader;
use snmp2::asn1::TYPE_SEQUENCE;

use super::decode::Refused;
use super::usm::Keys;

/// The file in the state directory: the engine id (hex) and the boots so far.
pub const ENGINE_FILE: &str = "snmp-engine";
/// RFC 3414 §3.2.7: a message more than 150 s from the engine's time is refused.
const TIME_WINDOW: i64 = 150;
/// RFC 3411: an engine id "administratively assigned" octets (format 5) under no enterprise
/// of its own (snbox has no IANA number), then eight random bytes.
const ENGINE_ID_PREFIX: [u8; 5] = [0x80, 0x00, 0x00, 0x00, 0x05];
/// usmStatsNotInTimeWindows.0 and usmStatsUnknownEngineIDs.0 (RFC 3414 §5), as BER contents.
const NOT_IN_TIME_WINDOWS: &[u8] = &[0x2b, 6, 1, 6, 3, 15, 1, 1, 2, 0];
const UNKNOWN_ENGINE_IDS: &[u8] = &[0x2b, 6, 1, 6, 3, 15, 1, 1, 4, 0];
const FLAG_AUTH: u8 = 1;
const FLAG_PRIV: u8 = 2;
const FLAG_REPORTABLE: u8 = 4;
const INFORM: u8 = 0xa6;
const TRAP: u8 = 0xa7;
const RESPONSE: u8 = 0xa2;
const REPORT: u8 = 0xa8;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {why} (delete the file to make a new engine id)", path.display())]
    Corrupt { path: PathBuf, why: String },
}

/// The box's engine: its id, its boots, the time since this start, and its Report counters.
pub struct Engine {
    id: Vec<u8>,
    boots: u32,
    started: Instant,
    unknown_engine_ids: u32,
    not_in_time_windows: u32,
}

/// What a v3 message sent to the box's engine comes to.
pub enum Opened {
    /// A notification's PDU (the whole TLV) and, for an INFORM, the Response to send.
    Notification { pdu: Vec<u8>, answer: Option<Vec<u8>> },
    /// A Report to send back (out of the time window); nothing else is done with it.
    Report(Vec<u8>),
}

impl Engine {
    /// Reads the engine from the state directory (made at the first start) and counts this
    /// start as one more boot, written before anything is answered with it.
    pub fn start(state_dir: &Path) -> Result<Engine, EngineError> {
        let path = state_dir.join(ENGINE_FILE);
        let io = |source| EngineError::Io {
            path: path.clone(),
            source,
        };
        let (id, boots) = match std::fs::read_to_string(&path) {
            Ok(text) => read_engine_file(&text).map_err(|why| EngineError::Corrupt {
                path: path.clone(),
                why,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut random = [0u8; 8];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
                    .map_err(|_| io(std::io::Error::other("no random bytes")))?;
                ([&ENGINE_ID_PREFIX[..], &random].concat(), 0)
            }
            Err(e) => return Err(io(e)),
        };
        // RFC 3414 §2.2.2: boots stop at 2^31 - 1.
        let boots = boots.saturating_add(1).min(i32::MAX as u32);
        let text = format!("engine_id = {}\nboots = {boots}\n", hex(&id));
        crate::central::identity::write_atomically(&path, text.as_bytes(), 0o644).map_err(io)?;
        Ok(Engine {
            id,
            boots,
            started: Instant::now(),
            unknown_engine_ids: 0,
            not_in_time_windows: 0,
        })
    }

    pub fn id(&self) -> &[u8] {
        &self.id
    }

    fn time(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs())
            .unwrap_or(i32::MAX as u32)
            .min(i32::MAX as u32)
    }

    /// The answer to a message that names no engine (a sender's discovery): a Report with the
    /// box's engine id, boots and time. `None` unless the sender asked for reports.
    pub fn discovery(&mut self, message: &Message<'_>) -> Option<Vec<u8>> {
        if message.flags & FLAG_REPORTABLE == 0 {
            return None;
        }
        self.unknown_engine_ids = self.unknown_engine_ids.wrapping_add(1);
        let request_id = match message.scoped {
            Scoped::Plain(scoped) => read_scoped(scoped).map_or(0, |s| request_id(s.pdu)),
            Scoped::Encrypted(_) => 0,
        };
        let report = report(&self.id, request_id, UNKNOWN_ENGINE_IDS, self.unknown_engine_ids);
        Some(self.message(message.msg_id, message.user, None, &report))
    }

    /// A message to the box's engine from `keys`' user: authenticated, in the time window,
    /// decrypted. A wrong key or security level is `BadAuth`.
    pub fn open(&mut self, message: &Message<'_>, datagram: &[u8], keys: &Keys) -> Result<Opened, Refused> {
        let authenticated = message.flags & FLAG_AUTH != 0;
        let encrypted = message.flags & FLAG_PRIV != 0;
        if authenticated != keys.authenticates() || encrypted != keys.encrypts() {
            return Err(Refused::BadAuth("the security level is not the device's".into()));
        }
        if authenticated {
            let at = message.auth_at;
            let mut zeroed = datagram.to_vec();
            zeroed[at..at + message.auth_params.len()].fill(0);
            if !crate::secret::same(&keys.mac(&zeroed), message.auth_params) {
                return Err(Refused::BadAuth("wrong v3 authentication key".into()));
            }
            let in_window =
                i64::from(self.boots) == message.boots && (message.time - i64::from(self.time())).abs() <= TIME_WINDOW;
            if !in_window {
                self.not_in_time_windows = self.not_in_time_windows.wrapping_add(1);
                let request_id = self
                    .scoped_of(message, keys)
                    .ok()
                    .and_then(|s| read_scoped(&s).ok().map(|s| request_id(s.pdu)))
                    .unwrap_or(0);
                let report = report(&self.id, request_id, NOT_IN_TIME_WINDOWS, self.not_in_time_windows);
                // RFC 3414 §3.2.7: authenticated (so the sender believes the time), not encrypted.
                return Ok(Opened::Report(self.message(
                    message.msg_id,
                    message.user,
                    Some((keys, false)),
                    &report,
                )));
            }
        }
        let scoped = self.scoped_of(message, keys)?;
        let ScopedPdu {
            context_engine,
            context_name,
            tag,
            pdu,
        } = read_scoped(&scoped).map_err(|e| Refused::Malformed(format!("v3 scoped PDU unreadable ({e})")))?;
        if tag != INFORM && tag != TRAP {
            return Err(Refused::Malformed(format!(
                "a PDU of type 0x{tag:02x}, not a notification"
            )));
        }
        let answer = (tag == INFORM).then(|| {
            // The Response: the INFORM's request id and variable bindings, in its context.
            let response = [tlv(0x04, context_engine), tlv(0x04, context_name), tlv(RESPONSE, pdu)].concat();
            self.message(
                message.msg_id,
                message.user,
                Some((keys, encrypted)),
                &tlv(0x30, &response),
            )
        });
        Ok(Opened::Notification {
            pdu: tlv(tag, pdu),
            answer,
        })
    }

    fn scoped_of(&self, message: &Message<'_>, keys: &Keys) -> Result<Vec<u8>, Refused> {
        match message.scoped {
            Scoped::Plain(scoped) => Ok(scoped.to_vec()),
            Scoped::Encrypted(sealed) => {
                let boots = u32::try_from(message.boots).unwrap_or(0);
                let time = u32::try_from(message.time).unwrap_or(0);
                keys.decrypt(sealed, message.priv_params, boots, time)
                    .map_err(|e| Refused::BadAuth(format!("cannot decrypt: {e}")))
            }
        }
    }

    /// A whole v3 message from the box's engine around `scoped` (a scoped PDU's TLV):
    /// authenticated with `keys` when given, and encrypted when the flag says so.
    fn message(&self, msg_id: i64, user: &[u8], keys: Option<(&Keys, bool)>, scoped: &[u8]) -> Vec<u8> {
        let (boots, time) = (self.boots, self.time());
        let mut flags = 0;
        let (scoped, salt) = match keys {
            Some((keys, true)) => {
                flags |= FLAG_PRIV;
                let mut salt = [0u8; 8];
                // A salt need only differ between messages; without randomness it stays zero.
                let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt);
                let (sealed, salt) = keys.encrypt(scoped, boots, time, salt);
                (tlv(0x04, &sealed), salt)
            }
            _ => (scoped.to_vec(), Vec::new()),
        };
        let mac_len = keys.map_or(0, |(k, _)| k.mac_len());
        if mac_len > 0 {
            flags |= FLAG_AUTH;
        }
        let header = tlv(
            0x30,
            &[integer(msg_id), integer(65_507), tlv(0x04, &[flags]), integer(3)].concat(),
        );
        let before_mac = [
            tlv(0x04, &self.id),
            integer(boots.into()),
            integer(time.into()),
            tlv(0x04, user),
        ]
        .concat();
        let usm = [before_mac.as_slice(), &tlv(0x04, &vec![0; mac_len]), &tlv(0x04, &salt)].concat();
        let security = tlv(0x04, &tlv(0x30, &usm));
        let version = integer(3);
        let body = [version.as_slice(), &header, &security, &scoped].concat();
        let mut message = tlv(0x30, &body);
        if let Some((keys, _)) = keys.filter(|_| mac_len > 0) {
            // The MAC's place: past the headers around it and the fields before it.
            let at = header_len(body.len())
                + version.len()
                + header.len()
                + header_len(usm.len() + header_len(usm.len()))
                + header_len(usm.len())
                + before_mac.len()
                + header_len(mac_len);
            let mac = keys.mac(&message);
            message[at..at + mac_len].copy_from_slice(&mac);
        }
        message
    }
}

/// A v3 message as far as it can be read without keys.
pub struct Message<'a> {
    msg_id: i64,
    flags: u8,
    pub engine_id: &'a [u8],
    boots: i64,
    time: i64,
    pub user: &'a [u8],
    auth_params: &'a [u8],
    /// Where the authentication parameters are in the datagram.
    auth_at: usize,
    priv_params: &'a [u8],
    scoped: Scoped<'a>,
}

#[derive(Clone, Copy)]
enum Scoped<'a> {
    /// The scoped PDU's TLV.
    Plain(&'a [u8]),
    /// The encrypted scoped PDU (the octet string's contents).
    Encrypted(&'a [u8]),
}

impl<'a> Message<'a> {
    pub fn read(datagram: &'a [u8]) -> Result<Message<'a>, Refused> {
        let bad = |what: &str| Refused::Malformed(format!("v3 message: {what}"));
        let mut outer = AsnReader::from_bytes(datagram);
        let content = outer.read_raw(TYPE_SEQUENCE).map_err(|_| bad("not a sequence"))?;
        let mut message = AsnReader::from_bytes(content);
        message.read_asn_integer().map_err(|_| bad("no version"))?;
        let header = message.read_raw(TYPE_SEQUENCE).map_err(|_| bad("no header"))?;
        let mut header = AsnReader::from_bytes(header);
        let msg_id = header.read_asn_integer().map_err(|_| bad("no msgID"))?;
        header.read_asn_integer().map_err(|_| bad("no msgMaxSize"))?;
        let flags = header
            .read_asn_octetstring()
            .map_err(|_| bad("no msgFlags"))?
            .first()
            .copied()
            .unwrap_or(0);
        if header.read_asn_integer().map_err(|_| bad("no security model"))? != 3 {
            return Err(bad("not the user-based security model"));
        }
        let security = message
            .read_asn_octetstring()
            .map_err(|_| bad("no security parameters"))?;
        let security = AsnReader::from_bytes(security)
            .read_raw(TYPE_SEQUENCE)
            .map_err(|_| bad("security parameters are not a sequence"))?;
        let mut usm = AsnReader::from_bytes(security);
        let engine_id = usm.read_asn_octetstring().map_err(|_| bad("no engine id"))?;
        let boots = usm.read_asn_integer().map_err(|_| bad("no engine boots"))?;
        let time = usm.read_asn_integer().map_err(|_| bad("no engine time"))?;
        let user = usm.read_asn_octetstring().map_err(|_| bad("no user name"))?;
        let auth_params = usm
            .read_asn_octetstring()
            .map_err(|_| bad("no authentication parameters"))?;
        let priv_params = usm.read_asn_octetstring().map_err(|_| bad("no privacy parameters"))?;
        // The parameters are a slice of the datagram: their place in it, by address.
        let auth_at = auth_params.as_ptr() as usize - datagram.as_ptr() as usize;
        let scoped = if flags & FLAG_PRIV != 0 {
            Scoped::Encrypted(message.read_asn_octetstring().map_err(|_| bad("no encrypted PDU"))?)
        } else {
            let rest = &content[content.len() - message.bytes_left()..];
            message.read_raw(TYPE_SEQUENCE).map_err(|_| bad("no scoped PDU"))?;
            Scoped::Plain(&rest[..rest.len() - message.bytes_left()])
        };
        Ok(Message {
            msg_id,
            flags,
            engine_id,
            boots,
            time,
            user,
            auth_params,
            auth_at,
            priv_params,
            scoped,
        })
    }
}

/// A scoped PDU, as read.
struct ScopedPdu<'a> {
    context_engine: &'a [u8],
    context_name: &'a [u8],
    tag: u8,
    /// The PDU's contents: request id, error status and index, variable bindings.
    pdu: &'a [u8],
}

/// A scoped PDU's TLV (trailing padding allowed).
fn read_scoped(scoped: &[u8]) -> Result<ScopedPdu<'_>, String> {
    let describe = |e: snmp2::Error| crate::probe::snmp::describe(&e);
    let content = AsnReader::from_bytes(scoped)
        .read_raw(TYPE_SEQUENCE)
        .map_err(describe)?;
    let mut reader = AsnReader::from_bytes(content);
    let context_engine = reader.read_asn_octetstring().map_err(describe)?;
    let context_name = reader.read_asn_octetstring().map_err(describe)?;
    let tag = reader.peek_byte().map_err(describe)?;
    let pdu = reader.read_raw(tag).map_err(describe)?;
    Ok(ScopedPdu {
        context_engine,
        context_name,
        tag,
        pdu,
    })
}

fn request_id(pdu: &[u8]) -> i64 {
    AsnReader::from_bytes(pdu).read_asn_integer().unwrap_or(0)
}

/// A Report's scoped PDU: one counter.
fn report(engine_id: &[u8], request_id: i64, counter: &[u8], value: u32) -> Vec<u8> {
    let varbind = tlv(0x30, &[tlv(0x06, counter), tlv(0x41, &unsigned(value))].concat());
    let pdu = [integer(request_id), integer(0), integer(0), tlv(0x30, &varbind)].concat();
    tlv(
        0x30,
        &[tlv(0x04, engine_id), tlv(0x04, b""), tlv(REPORT, &pdu)].concat(),
    )
}

fn read_engine_file(text: &str) -> Result<(Vec<u8>, u32), String> {
    let mut id = None;
    let mut boots = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("engine_id", v)) => id = Some(unhex(v).ok_or_else(|| format!("engine_id {v:?} is not hex"))?),
            Some(("boots", v)) => boots = Some(v.parse::<u32>().map_err(|_| format!("boots {v:?} is not a number"))?),
            _ => return Err(format!("the line {line:?} is not understood")),
        }
    }
    let id = id
        .filter(|i| (5..=32).contains(&i.len()))
        .ok_or("no engine_id of 5 to 32 bytes")?;
    Ok((id, boots.ok_or("no boots")?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The length of a TLV's tag and length for `len` bytes of contents.
fn header_len(len: usize) -> usize {
    if len < 0x80 {
        2
    } else {
        2 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

fn integer(n: i64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    // The shortest two's complement: drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..])
}

fn unsigned(n: u32) -> Vec<u8> {
    let content = integer(n.into());
    content[2..].to_vec()
}
