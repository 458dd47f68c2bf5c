//! The address ranges of a census: CIDR blocks (`10.0.0.0/24`, `fd00::/120`) or `A-B` ranges
//! (`10.0.0.10-10.0.0.50`), IPv4 or IPv6, at most [`MAX_ADDRESSES`] addresses in all (or the
//! caller's lower limit). Only the addresses inside them are ever probed.

use std::net::IpAddr;

/// The most addresses one census covers (protocol.md §8).
pub const MAX_ADDRESSES: u64 = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0:?} is not a range: write a CIDR block (192.0.2.0/24) or A-B (192.0.2.10-192.0.2.50)")]
    Unreadable(String),
    #[error("{0:?}: the prefix length is larger than the address")]
    Prefix(String),
    #[error("{0:?}: its two ends are not of the same family")]
    Mixed(String),
    #[error("{0:?}: its end comes before its start")]
    Backwards(String),
    #[error("the ranges hold {count} addresses, more than the {limit} one census may probe: split them")]
    TooMany { count: u128, limit: u64 },
    #[error("no range given")]
    None,
}

/// One range, as first and last address (as numbers of their family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub text: String,
    v6: bool,
    first: u128,
    last: u128,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let text = text.trim();
        let bad = || RangeError::Unreadable(text.to_string());
        if let Some((address, prefix)) = text.split_once('/') {
            let address: IpAddr = address.trim().parse().map_err(|_| bad())?;
            let prefix: u32 = prefix.trim().parse().map_err(|_| bad())?;
            let bits = if address.is_ipv6() { 128 } else { 32 };
            if prefix > bits {
                return Err(RangeError::Prefix(text.to_string()));
            }
            let host_bits = bits - prefix;
            let mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let first = number(address) & !mask;
            return Ok(Range {
                text: text.to_string(),
                v6: address.is_ipv6(),
                first,
                last: first | mask,
            });
        }
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text, text),
        };
        let first: IpAddr = first.parse().map_err(|_| bad())?;
        let last: IpAddr = last.parse().map_err(|_| bad())?;
        if first.is_ipv6() != last.is_ipv6() {
            return Err(RangeError::Mixed(text.to_string()));
        }
        if number(last) < number(first) {
            return Err(RangeError::Backwards(text.to_string()));
        }
        Ok(Range {
            text: text.to_string(),
            v6: first.is_ipv6(),
            first: number(first),
            last: number(last),
        })
    }

    pub fn len(&self) -> u128 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv6() == self.v6 && (self.first..=self.last).contains(&number(address))
    }

    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (self.first..=self.last).map(|n| address(n, self.v6))
    }
}

/// Parses every range and checks their total against `limit` (at most [`MAX_ADDRESSES`]).
pub fn parse_all(texts: &[String], limit: u64) -> Result<Vec<Range>, RangeError> {
    if texts.is_empty() {
        return Err(RangeError::None);
    }
    let ranges = texts.iter().map(|t| Range::parse(t)).collect::<Result<Vec<_>, _>>()?;
    let count: u128 = ranges.iter().map(Range::len).fold(0u128, u128::saturating_add);
    let limit = limit.min(MAX_ADDRESSES);
    if count > u128::from(limit) {
        return Err(RangeError::TooMany { count, limit });
    }
    Ok(ranges)
}

/// Every address of `ranges` once, in order.
pub fn addresses(ranges: &[Range]) -> Vec<IpAddr> {
    let mut seen = std::collections::BTreeSet::new();
    ranges
        .iter()
        .flat_map(Range::addresses)
        .filter(|a| seen.insert(*a))
        .collect()
}

fn number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn address(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cidr_blocks_and_dash_ranges_of_both_families() {
        let r = Range::parse("127.66.0.0/24").expect("cidr");
        assert_eq!(r.len(), 256);
        assert!(r.contains("127.66.0.255".parse().expect("ip")));
        assert!(!r.contains("127.66.1.0".parse().expect("ip")));
        let host = Range::parse("127.66.0.7/24").expect("host bits cleared");
        assert_eq!(host.addresses().next(), Some("127.66.0.0".parse().expect("ip")));
        let dash = Range::parse("10.0.0.250-10.0.1.4").expect("dash");
        assert_eq!(dash.len(), 11);
        let v6 = Range::parse("fd00::/120").expect("v6");
        assert_eq!(v6.len(), 256);
        assert_eq!(Range::parse("::1").expect("one").len(), 1);
        assert_eq!(Range::parse("10.0.0.0/0").expect("all v4").len(), 1 << 32);
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        assert!(matches!(Range::parse("10.0.0.0/33"), Err(RangeError::Prefix(_))));
        assert!(matches!(
            Range::parse("10.0.0.9-10.0.0.1"),
            Err(RangeError::Backwards(_))
        ));
        assert!(matches!(Range::parse("10.0.0.1-::1"), Err(RangeError::Mixed(_))));
        assert!(matches!(Range::parse("printer.local"), Err(RangeError::Unreadable(_))));
        assert_eq!(parse_all(&[], 10), Err(RangeError::None));
    }

    #[test]
    fn more_than_the_limit_in_all_is_refused() {
        assert!(parse_all(&strings(&["10.0.0.0/16"]), MAX_ADDRESSES).is_ok());
        let over = parse_all(&strings(&["10.0.0.0/16", "10.1.0.0/32"]), MAX_ADDRESSES);
        assert_eq!(
            over,
            Err(RangeError::TooMany {
                count: 65_537,
                limit: 65_536
            })
        );
        let settings = parse_all(&strings(&["10.0.0.0/24"]), 100).expect_err("over the settings' limit");
        assert!(settings.to_string().contains("more than the 100"), "{settings}");
        assert!(parse_all(&strings(&["fd00::/64"]), MAX_ADDRESSES).is_err());
    }

    #[test]
    fn overlapping_ranges_probe_each_address_once() {
        let ranges = parse_all(&strings(&["10.0.0.0/30", "10.0.0.2-10.0.0.5"]), 100).expect("ranges");
        assert_eq!(addresses(&ranges).len(), 6);
    }
}
