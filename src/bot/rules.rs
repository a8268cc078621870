//! Approval rules: name patterns, per token or account-wide; the first match wins. An allow
//! may carry conditions: for how long, at most which privilege, from which addresses.
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::{AddressRanges, Privilege};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// One rule: applications whose name matches `pattern` (`*` any run of characters, `?` one
/// character), on `token_id` if given or any token otherwise, get `action`. An allow may
/// carry conditions: `for` (`90s`, `45m`, `12h`, `30d`), `max_privilege` and `cidrs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub pattern: String,
    pub action: Action,
    #[serde(default)]
    pub token_id: Option<Uuid>,
    /// How long an approval by this rule lasts.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// The most privilege an application approved by this rule acts with.
    #[serde(default)]
    pub max_privilege: Option<String>,
    /// The address ranges an application approved by this rule may call from.
    #[serde(default)]
    pub cidrs: Vec<String>,
}

/// The conditions a rule's allow carries, checked when the rules are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleConditions {
    pub lasts: Option<chrono::TimeDelta>,
    pub max_privilege: Option<Privilege>,
    pub cidrs: Vec<String>,
}

impl RuleConditions {
    pub fn is_empty(&self) -> bool {
        self.lasts.is_none() && self.max_privilege.is_none() && self.cidrs.is_empty()
    }

    /// How people read them: `for 30d, at most read_only, from 10.0.0.0/8`.
    pub fn describe(&self, for_text: Option<&str>) -> String {
        let mut parts = Vec::new();
        if let Some(text) = for_text {
            parts.push(format!("for {text}"));
        }
        if let Some(p) = self.max_privilege {
            parts.push(format!("at most {}", p.as_str()));
        }
        if !self.cidrs.is_empty() {
            parts.push(format!("from {}", self.cidrs.join(" ")));
        }
        parts.join(", ")
    }
}

impl Rule {
    /// The rule's conditions, or why they are wrong.
    pub fn conditions(&self) -> Result<RuleConditions, String> {
        let lasts = self
            .for_
            .as_deref()
            .map(|span| crate::admin::parse_span(span).map_err(|e| e.to_string()))
            .transpose()?;
        let max_privilege = self
            .max_privilege
            .as_deref()
            .map(|p| {
                p.parse::<Privilege>()
                    .map_err(|e| format!("max_privilege {p:?}: {e}"))
            })
            .transpose()?;
        AddressRanges::parse(&self.cidrs).map_err(|e| format!("cidrs: {e}"))?;
        let conditions = RuleConditions {
            lasts,
            max_privilege,
            cidrs: self.cidrs.clone(),
        };
        if self.action == Action::Deny && !conditions.is_empty() {
            return Err(format!(
                "rule for {:?}: only an allow carries conditions (for, max_privilege, cidrs)",
                self.pattern
            ));
        }
        Ok(conditions)
    }
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
        let rules: Rules = toml::from_str(text).map_err(|e| e.to_string())?;
        for rule in &rules.rules {
            rule.conditions()?;
        }
        Ok(rules)
    }

    /// The action for an application name on a token; `None` leaves it pending.
    pub fn decide(&self, token_id: Uuid, name: &str) -> Option<Action> {
        self.matching(token_id, name).map(|(_, r)| r.action)
    }

    /// The first rule that matches, with its number (from 1, as people count them).
    pub fn matching(&self, token_id: Uuid, name: &str) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| {
                r.token_id.is_none_or(|t| t == token_id)
                    && glob(r.pattern.as_bytes(), name.as_bytes())
            })
            .map(|(i, r)| (i + 1, r))
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
    fn allows_carry_conditions_and_denies_do_not() {
        let rules = Rules::parse(
            r#"
            [[rule]]
            pattern = "terraform*"
            action = "allow"
            for = "30d"
            max_privilege = "read_only"
            cidrs = ["10.0.0.0/8"]
            "#,
        )
        .unwrap();
        let (number, rule) = rules.matching(Uuid::new_v4(), "terraform 1.9").unwrap();
        assert_eq!(number, 1);
        let conditions = rule.conditions().unwrap();
        assert_eq!(conditions.lasts, Some(chrono::TimeDelta::days(30)));
        assert_eq!(conditions.max_privilege, Some(Privilege::ReadOnly));
        assert_eq!(
            conditions.describe(rule.for_.as_deref()),
            "for 30d, at most read_only, from 10.0.0.0/8"
        );
        assert!(
            Rules::parse("[[rule]]\npattern = \"x\"\naction = \"deny\"\nfor = \"1d\"")
                .unwrap_err()
                .contains("only an allow")
        );
        assert!(
            Rules::parse("[[rule]]\npattern = \"x\"\naction = \"allow\"\nfor = \"soon\"").is_err()
        );
        assert!(
            Rules::parse(
                "[[rule]]\npattern = \"x\"\naction = \"allow\"\ncidrs = [\"10.0.0.0/99\"]"
            )
            .unwrap_err()
            .contains("cidrs")
        );
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
