//! Approval rules: name patterns, per token or account-wide; the first match wins.
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// One rule: applications whose name matches `pattern` (`*` any run of characters, `?` one
/// character), on `token_id` if given or any token otherwise, get `action`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub pattern: String,
    pub action: Action,
    #[serde(default)]
    pub token_id: Option<Uuid>,
}

/// A rules file:
///
/// ```toml
/// [[rule]]
/// pattern = "circonus:osi:*"
/// action = "allow"
///
/// [[rule]]
/// pattern = "curl*"
/// action = "deny"
/// token_id = "6ef4d9d9-9e93-435c-9c04-7c11f0512b3e"
/// ```
///
/// Names no rule matches stay pending, for a person to decide.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The action for an application name on a token; `None` leaves it pending.
    pub fn decide(&self, token_id: Uuid, name: &str) -> Option<Action> {
        self.rules
            .iter()
            .find(|r| {
                r.token_id.is_none_or(|t| t == token_id)
                    && glob(r.pattern.as_bytes(), name.as_bytes())
            })
            .map(|r| r.action)
    }
}

/// `*` and `?` wildcards, iteratively with one backtrack point: linear in practice, no recursion.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"circonus:osi:*", b"circonus:osi:0018fd34"));
        assert!(glob(b"Terraform v0.1?.x", b"Terraform v0.12.x"));
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(!glob(b"a*b*c", b"aXXbYY"));
        assert!(!glob(b"curl", b"curl/7.1"));
    }

    #[test]
    fn first_match_wins_and_token_rules_are_scoped() {
        let token = Uuid::new_v4();
        let rules = Rules::parse(&format!(
            r#"
            [[rule]]
            pattern = "curl*"
            action = "deny"
            token_id = "{token}"

            [[rule]]
            pattern = "*"
            action = "allow"
            token_id = "{token}"

            [[rule]]
            pattern = "circonus:osi:*"
            action = "allow"
            "#
        ))
        .unwrap();
        assert_eq!(rules.decide(token, "curl/8"), Some(Action::Deny));
        assert_eq!(rules.decide(token, "anything"), Some(Action::Allow));
        let other = Uuid::new_v4();
        assert_eq!(rules.decide(other, "curl/8"), None);
        assert_eq!(rules.decide(other, "circonus:osi:ab"), Some(Action::Allow));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(
            Rules::parse("[[rule]]\npattern = \"x\"\naction = \"maybe\"")
                .unwrap_err()
                .contains("maybe")
        );
        assert!(Rules::parse("[[rule]]\npatern = \"x\"\naction = \"allow\"").is_err());
    }
}
