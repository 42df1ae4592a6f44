//! Step-up authorization (MCP "Step-Up Authorization Flow"): a server answers 403
//! `insufficient_scope` naming the scopes it needs; the broker signs in again asking for
//! the union of what was granted and what is needed, a bounded number of times, and only
//! for scopes that are well-formed (a hostile server cannot make it ask for anything).

/// How many step-ups one request may cause.
pub const MAX_STEP_UPS: u32 = 2;

/// At most this many scopes are ever requested for one server.
pub const MAX_SCOPES: usize = 64;

/// Why no step-up is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepUpRefused {
    #[error("still answers insufficient_scope (needs {0}) after step-up; ask its administrator for access")]
    Exhausted(String),
    #[error("asks for a malformed scope {0:?}; not requested")]
    Malformed(String),
    #[error("asks for more than {MAX_SCOPES} scopes; not requested")]
    TooMany,
    #[error("answers insufficient_scope without naming a scope, and its metadata lists none to ask for; ask its administrator for access")]
    Unnamed,
}

/// Whether step-up number `attempt` (0-based) of one request may still be made: checked
/// first, so a server that keeps refusing scopes already granted ends the request too.
pub fn within_limit(needed: &[String], attempt: u32) -> Result<(), StepUpRefused> {
    if attempt >= MAX_STEP_UPS {
        let needs = if needed.is_empty() { "scopes it does not name".to_owned() } else { needed.join(" ") };
        return Err(StepUpRefused::Exhausted(needs));
    }
    Ok(())
}

/// The scopes to ask for on step-up number `attempt` (0-based), or why not.
pub fn scopes(granted: &[String], needed: &[String], attempt: u32) -> Result<Vec<String>, StepUpRefused> {
    within_limit(needed, attempt)?;
    if let Some(bad) = needed.iter().find(|s| !well_formed(s)) {
        return Err(StepUpRefused::Malformed(bad.chars().take(64).collect()));
    }
    let wanted = crate::oauth::login::scopes::union(granted, needed);
    if wanted.len() > MAX_SCOPES {
        return Err(StepUpRefused::TooMany);
    }
    Ok(wanted)
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, at most 256 bytes.
fn well_formed(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn union_keeps_granted_first_without_duplicates() {
        assert_eq!(scopes(&v(&["read", "offline_access"]), &v(&["write", "read"]), 0).unwrap(), v(&["read", "offline_access", "write"]));
    }

    #[test]
    fn limited_to_max_step_ups() {
        assert!(scopes(&[], &v(&["a"]), MAX_STEP_UPS - 1).is_ok());
        assert_eq!(scopes(&[], &v(&["a", "b"]), MAX_STEP_UPS), Err(StepUpRefused::Exhausted("a b".into())));
    }

    #[test]
    fn malformed_scopes_are_refused() {
        for bad in ["", "a\"b", "a\\b", "a b", "é", "a\u{7f}"] {
            assert!(matches!(scopes(&[], &v(&[bad]), 0), Err(StepUpRefused::Malformed(_))), "{bad:?}");
        }
        assert!(scopes(&[], &v(&["x".repeat(257).as_str()]), 0).is_err());
    }

    #[test]
    fn too_many_scopes_are_refused() {
        let many: Vec<String> = (0..MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert!(scopes(&many[..MAX_SCOPES - 1], &many[MAX_SCOPES - 1..], 0).is_ok());
        assert_eq!(scopes(&many, &v(&["one-more"]), 0), Err(StepUpRefused::TooMany));
    }
}
