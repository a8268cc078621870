//! Application names and their approval state under a token.
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use uuid::Uuid;

use super::Conditions;

/// Whether an application name may use a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppState {
    Allow,
    Pending,
    Deny,
}

super::names!(AppState {
    Allow => "allow",
    Pending => "pending",
    Deny => "deny",
});

/// A validated application name, as sent in `X-Circonus-App-Name`.
///
/// Real names carry spaces, dots and colons (`Terraform v0.12.x`,
/// `circonus:osi:<64 hex>`), so any printable ASCII is accepted: 1 to 200
/// characters, no leading or trailing space. HTTP header values are ASCII anyway. A name of
/// up to 24 bytes, as most are, is stored inline: the hot path reads one without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(CompactString);

impl AppName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(name: &str) -> Result<Self, String> {
        Self::check(name)?;
        Ok(AppName(name.into()))
    }

    /// `parse`, keeping the caller's string: an Authorize request owns one already.
    pub fn parse_owned(name: CompactString) -> Result<Self, String> {
        Self::check(&name)?;
        Ok(AppName(name))
    }

    fn check(name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        if name.len() > Self::MAX_LEN {
            return Err(format!(
                "must be at most {} characters, got {}",
                Self::MAX_LEN,
                name.len()
            ));
        }
        // Bytes, not chars: a byte of a multi-byte character is never printable ASCII, and
        // this loop is on every Authorize. The character is found only to name it.
        if !name.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            let c = name
                .chars()
                .find(|c| !(c.is_ascii_graphic() || *c == ' '))
                .unwrap_or_default();
            return Err(format!(
                "may contain only printable ASCII characters (letters, digits, spaces, punctuation), found {c:?}"
            ));
        }
        if name.starts_with(' ') || name.ends_with(' ') {
            return Err("must not start or end with a space".into());
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AppName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What decides an application on a token: its state and, for an Allow, its conditions.
/// Cheap to clone (the conditions are shared), as the hot path's cache hands out clones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStanding {
    pub state: AppState,
    pub conditions: Option<Arc<Conditions>>,
}

impl AppStanding {
    pub fn plain(state: AppState) -> Self {
        AppStanding {
            state,
            conditions: None,
        }
    }
}

/// What the service saw of an application's calls: written behind, so approximate by up to
/// one write interval, and counted per replica (the counts add up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Calls refused because the application was Pending or Denied.
    pub refused_attempts: u64,
    /// Calls allowed.
    pub allowed_count: u64,
    /// The client address of the last call that gave one.
    pub last_client_address: Option<IpAddr>,
}

/// Why a decision was made, as its maker says: at most 1000 characters, kept in the audit log
/// and carried on the watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rationale(String);

impl Rationale {
    /// `None` for an empty reason.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        super::Description::parse(text).map(|d| Some(Rationale(d.as_str().to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An application name recorded under a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub token_id: Uuid,
    pub name: AppName,
    pub state: AppState,
    /// An Allow's conditions; `None` for none.
    pub conditions: Option<Conditions>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub evidence: Evidence,
}

impl Application {
    pub fn standing(&self) -> AppStanding {
        AppStanding {
            state: self.state,
            conditions: self.conditions.clone().map(Arc::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_circonus_names_are_valid() {
        for name in [
            "Terraform v0.12.x",
            "Grafana Translator",
            "circonus-irondb-datasource",
            "circonus:osi:0018fd34aa2e3c1b49e36ef4b8a8d4b0ab6e2b7f1b8e7c0d9d5f3d3f0a8ff759",
            "a",
        ] {
            assert!(AppName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        assert!(AppName::parse("").unwrap_err().contains("empty"));
        assert!(
            AppName::parse(&"x".repeat(201))
                .unwrap_err()
                .contains("at most 200")
        );
        assert!(
            AppName::parse("tab\there")
                .unwrap_err()
                .contains("printable")
        );
        assert!(
            AppName::parse("caf\u{e9}")
                .unwrap_err()
                .contains("printable")
        );
        assert!(AppName::parse(" padded").unwrap_err().contains("space"));
    }
}
