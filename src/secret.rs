//! A secret string that cannot be printed by accident.

use std::fmt;

/// A secret value: `Debug` prints `[redacted]` and there is no `Display`; [`Secret::expose`]
/// is the one way to read it, so every use is greppable. Secrets are not `PartialEq`: a
/// comparison that ends at the first differing byte tells an attacker how much they guessed,
/// so the one comparison there is, [`Secret::matches`], takes the same time for every guess
/// of a given length.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time that depends on the lengths only
    /// (hand-written: eight lines, not worth a crate).
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

/// On the wire a secret is its plain string: serializing exposes the value. Only the
/// private control socket carries secrets this way (a login's client secret, a new host's
/// key); nothing that is logged or written to a file may serialize one.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_only_the_same_value() {
        let s = super::Secret::new("tok-123");
        assert!(s.matches("tok-123"));
        assert!(!s.matches("tok-124"));
        assert!(!s.matches("tok-12"));
        assert!(!s.matches(""));
        assert!(super::Secret::new("").matches(""));
    }

    #[test]
    fn serde_is_the_plain_string() {
        let s: super::Secret = serde_json::from_str("\"tok-123\"").unwrap();
        assert!(s.matches("tok-123"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"tok-123\"");
    }

    #[test]
    fn debug_is_redacted() {
        let s = super::Secret::new("tok-123");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{:?}", Some(s)).contains("tok"));
    }
}
