//! The on-disk form of a `result` body: a few dozen bytes instead of a JSON text.
//!
//! Results are nearly every record the box makes, so their size is the buffer's size: a
//! 64 MB cap holds about a million of them. Other kinds are rare and stay JSON text; a row's
//! SQLite type (BLOB or TEXT) says which form it is in, so rows written before this format
//! still read back.
//!
//! ```text
//! body    := 0x01 flags attempt duration_ms count metric{count} output
//! flags   := status (3 bits: ok warning critical unknown unreachable) | hard << 3 | in_availability << 4
//!            | in_maintenance << 5 | flapping << 6
//! metric  := name value
//! name    := byte < 0x80: KNOWN[byte] | 0x80 len name-bytes
//! value   := (exponent << 4 | 0) zigzag(mantissa)      the number is mantissa / 10^exponent
//!          | 0x01 f64-little-endian                     any other number
//! output  := len utf8-bytes
//! ```
//!
//! All integers are LEB128 varints. The decimal form round-trips exactly: it is chosen only
//! when `mantissa / 10^exponent`, an IEEE division of two exact numbers, gives back the very
//! same f64, and decoding performs that same division.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::record::{Body, State, StateType};

const FORMAT: u8 = 1;

/// Metric names the probes emit, by their one-byte code. Append only: codes are on disk.
const KNOWN: &[&str] = &[
    "rtt_min_ms",
    "rtt_avg_ms",
    "rtt_max_ms",
    "loss_pct",
    "packets_sent",
    "packets_received",
    "status_code",
    "time_ms",
    "body_bytes",
    "tls_days_left",
    "value",
    "values",
    "rate",
];

/// 10^0 … 10^15, exact in f64.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
/// Mantissas above 2^53 are not exact in f64.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("a stored result is malformed at byte {at}: {what}")]
pub struct DecodeError {
    at: usize,
    what: &'static str,
}

/// Encodes a `result` body; `None` for any other kind.
pub fn encode_result(body: &Body) -> Option<Vec<u8>> {
    let Body::Result {
        status,
        state_type,
        attempt,
        duration_ms,
        output,
        metrics,
        in_availability_period,
        in_maintenance,
        flapping,
    } = body
    else {
        return None;
    };
    let mut out = Vec::with_capacity(16 + output.len() + metrics.len() * 4);
    out.push(FORMAT);
    let hard = u8::from(*state_type == StateType::Hard);
    out.push(
        status.code() as u8
            | hard << 3
            | u8::from(*in_availability_period) << 4
            | u8::from(*in_maintenance) << 5
            | u8::from(*flapping) << 6,
    );
    varint(&mut out, u64::from(*attempt));
    varint(&mut out, *duration_ms);
    varint(&mut out, metrics.len() as u64);
    for (name, value) in metrics {
        match KNOWN.iter().position(|k| *k == name.as_ref()) {
            Some(code) => out.push(code as u8),
            None => {
                out.push(0x80);
                bytes(&mut out, name.as_bytes());
            }
        }
        number(&mut out, *value);
    }
    bytes(&mut out, output.as_bytes());
    Some(out)
}

/// Decodes what [`encode_result`] wrote.
pub fn decode_result(data: &[u8]) -> Result<Body, DecodeError> {
    let mut r = Reader { data, at: 0 };
    if r.byte("format")? != FORMAT {
        return Err(r.fail("unknown format"));
    }
    let flags = r.byte("flags")?;
    let status = State::from_code(i64::from(flags & 0x7)).ok_or_else(|| r.fail("status"))?;
    let state_type = if flags & 0x8 != 0 {
        StateType::Hard
    } else {
        StateType::Soft
    };
    let attempt = u32::try_from(r.varint()?).map_err(|_| r.fail("attempt"))?;
    let duration_ms = r.varint()?;
    let count = r.varint()?;
    let mut metrics = BTreeMap::new();
    for _ in 0..count {
        let code = r.byte("metric name")?;
        let name: Cow<'static, str> = if code < 0x80 {
            Cow::Borrowed(KNOWN.get(code as usize).ok_or_else(|| r.fail("metric code"))?)
        } else {
            Cow::Owned(r.text()?)
        };
        metrics.insert(name, r.number()?);
    }
    let output = r.text()?;
    if r.at != data.len() {
        return Err(r.fail("trailing bytes"));
    }
    Ok(Body::Result {
        status,
        state_type,
        attempt,
        duration_ms,
        output,
        metrics,
        in_availability_period: flags & 0x10 != 0,
        in_maintenance: flags & 0x20 != 0,
        flapping: flags & 0x40 != 0,
    })
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn number(out: &mut Vec<u8>, v: f64) {
    match decimal(v) {
        Some((mantissa, exponent)) => {
            out.push(exponent << 4);
            varint(out, ((mantissa << 1) ^ (mantissa >> 63)) as u64);
        }
        None => {
            out.push(0x01);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// `(m, e)` with `m / 10^e == v` exactly, the smallest such `e`.
fn decimal(v: f64) -> Option<(i64, u8)> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    POW10.iter().enumerate().find_map(|(e, p)| {
        let m = (v * p).round();
        (m.abs() < MAX_MANTISSA && m / p == v).then_some((m as i64, e as u8))
    })
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, what: &'static str) -> DecodeError {
        DecodeError { at: self.at, what }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.at).ok_or_else(|| self.fail(what))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte("varint")?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.fail("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or_else(|| self.fail("length past the end"))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| self.fail("length"))?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.fail("text is not UTF-8"))
    }

    fn number(&mut self) -> Result<f64, DecodeError> {
        let tag = self.byte("number tag")?;
        match tag & 0x0f {
            0 => {
                let z = self.varint()?;
                let m = ((z >> 1) as i64) ^ -((z & 1) as i64);
                Ok(m as f64 / POW10[usize::from(tag >> 4)])
            }
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(f64::from_le_bytes(a))
            }
            _ => Err(self.fail("number tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn result(metrics: BTreeMap<Cow<'static, str>, f64>, output: &str) -> Body {
        Body::Result {
            status: State::Warning,
            state_type: StateType::Hard,
            attempt: 3,
            duration_ms: 512,
            output: output.to_string(),
            metrics,
            in_availability_period: true,
            in_maintenance: false,
            flapping: true,
        }
    }

    #[test]
    fn an_icmp_result_takes_about_fifty_bytes() {
        let metrics = [
            ("rtt_min_ms", 0.067),
            ("rtt_avg_ms", 0.1),
            ("rtt_max_ms", 0.164),
            ("loss_pct", 0.0),
            ("packets_sent", 3.0),
            ("packets_received", 3.0),
        ]
        .into_iter()
        .map(|(k, v)| (Cow::Borrowed(k), v))
        .collect();
        let body = result(metrics, "3/3 replies, rtt 0.100 ms");
        let bytes = encode_result(&body).expect("a result");
        assert!(bytes.len() <= 55, "{} bytes", bytes.len());
        assert_eq!(decode_result(&bytes), Ok(body));
    }

    #[test]
    fn other_kinds_are_not_encoded_here() {
        let body = Body::StateChange {
            from: State::Ok,
            to: State::Critical,
            state_type: StateType::Soft,
        };
        assert_eq!(encode_result(&body), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [
            &[][..],
            &[1],
            &[2, 0],
            &[1, 7, 0, 0, 0, 0],
            &[1, 0, 0, 0, 1, 0x80, 200],
            &[1, 0, 0xff],
        ] {
            assert!(decode_result(data).is_err(), "{data:?}");
        }
    }

    proptest! {
        #[test]
        fn every_result_reads_back_exactly(
            status in 0i64..5,
            hard: bool,
            avail: bool,
            in_maintenance: bool,
            flapping: bool,
            attempt: u32,
            duration_ms: u64,
            output in ".{0,80}",
            metrics in proptest::collection::btree_map(
                prop_oneof![Just("rtt_avg_ms".to_string()), Just("rate".to_string()), "[a-z0-9.]{1,40}"],
                prop_oneof![any::<f64>(), (-1_000_000i64..1_000_000, 0u32..6).prop_map(|(m, e)| m as f64 / 10f64.powi(e as i32))],
                0..8,
            ),
        ) {
            let body = Body::Result {
                status: State::from_code(status).expect("status"),
                state_type: if hard { StateType::Hard } else { StateType::Soft },
                attempt,
                duration_ms,
                output,
                metrics: metrics.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
                in_availability_period: avail,
                in_maintenance,
                flapping,
            };
            let bytes = encode_result(&body).expect("a result");
            let back = decode_result(&bytes).expect("decodes");
            // NaN != NaN: compare bit patterns of the numbers.
            let bits = |b: &Body| match b {
                Body::Result { metrics, .. } => metrics.iter().map(|(k, v)| (k.to_string(), v.to_bits())).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            prop_assert_eq!(bits(&back), bits(&body));
            let strip = |b: Body| match b {
                Body::Result { metrics: _, status, state_type, attempt, duration_ms, output, in_availability_period, in_maintenance, flapping } =>
                    (status, state_type, attempt, duration_ms, output, in_availability_period, in_maintenance, flapping),
                _ => unreachable!(),
            };
            prop_assert_eq!(strip(back), strip(body));
        }
    }
}
