//! Application names and their approval state under a token.
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
/// characters, no leading or trailing space. HTTP header values are ASCII anyway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(String);

impl AppName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(name: &str) -> Result<Self, String> {
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
        if let Some(c) = name.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
            return Err(format!(
                "may contain only printable ASCII characters (letters, digits, spaces, punctuation), found {c:?}"
            ));
        }
        if name.starts_with(' ') || name.ends_with(' ') {
            return Err("must not start or end with a space".into());
        }
        Ok(AppName(name.to_owned()))
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

/// An application name recorded under a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub token_id: Uuid,
    pub name: AppName,
    pub state: AppState,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
