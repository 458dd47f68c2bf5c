//! A string that must never be shown: SNMP communities, v3 keys, HTTP passwords, tokens.
//!
//! `Debug` and `Display` print `***`, and deserializing never echoes the value in an
//! error message (serde's "invalid type: integer `123`" would otherwise leak it).

use std::fmt;

use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it (a probe, an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether a presented secret is the expected one, in a time that does not depend on where
/// they differ (tokens, communities).
pub fn same(expected: &[u8], presented: &[u8]) -> bool {
    expected.len() == presented.len() && expected.iter().zip(presented).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Take any value first so that a wrong type is reported without its content.
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => Ok(Secret(s)),
            _ => Err(serde::de::Error::custom(
                "expected a string (the value is secret and not shown)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_never_formatted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secret_of_wrong_type_is_not_echoed_in_the_error() {
        let err = serde_json::from_str::<Secret>("987654321").unwrap_err();
        assert!(!err.to_string().contains("987654321"), "{err}");
    }
}
