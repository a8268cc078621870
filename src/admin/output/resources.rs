//! Each resource the admin commands print (tokens, account policies, applications, members):
//! its table columns, its row, its JSON object.
use serde_json::{Value, json};

use super::{
    Listed, app_state, effective_privilege, or_dash, privilege, time, time_json, token_state,
    token_type,
};
use crate::grpc::pb;

/// Implements `Listed` for a resource by its columns and its row and JSON functions.
macro_rules! listed {
    ($resource:ty, $columns:expr, $row:path, $json:path) => {
        impl Listed for $resource {
            const COLUMNS: &'static [&'static str] = &$columns;
            fn row(&self) -> Vec<String> {
                $row(self)
            }
            fn json(&self) -> Value {
                $json(self)
            }
        }
    };
}

listed!(pb::Token, TOKEN_COLUMNS, token_row, token_json);
listed!(
    pb::Application,
    APPLICATION_COLUMNS,
    application_row,
    application_json
);
listed!(pb::Member, MEMBER_COLUMNS, member_row, member_json);

pub const TOKEN_COLUMNS: [&str; 7] = [
    "ID",
    "TYPE",
    "PRIVILEGE",
    "EFFECTIVE",
    "DEFAULT APP STATE",
    "STATE",
    "DESCRIPTION",
];

pub fn token_row(t: &pb::Token) -> Vec<String> {
    vec![
        t.id.clone(),
        token_type(t.r#type),
        privilege(t.privilege),
        effective_privilege(t.effective_privilege),
        app_state(t.default_app_state),
        token_state(t.state),
        or_dash(&t.description),
    ]
}

pub fn token_fields(t: &pb::Token) -> Vec<(&'static str, String)> {
    vec![
        ("id", t.id.clone()),
        ("type", token_type(t.r#type)),
        ("owner", or_dash(&t.owner_user_id)),
        ("privilege", privilege(t.privilege)),
        (
            "effective privilege",
            effective_privilege(t.effective_privilege),
        ),
        ("default app state", app_state(t.default_app_state)),
        ("state", token_state(t.state)),
        ("description", or_dash(&t.description)),
        ("bound cidrs", or_dash(&t.bound_cidrs.join(" "))),
        ("expires", or_dash(&time(t.expire_time.as_ref()))),
        ("rotated", or_dash(&time(t.rotate_time.as_ref()))),
        (
            "previous secret until",
            previous_secret(t.previous_secret.as_ref()),
        ),
        ("created", time(t.create_time.as_ref())),
        ("last used", or_dash(&time(t.last_used_time.as_ref()))),
    ]
}

pub fn token_json(t: &pb::Token) -> Value {
    json!({
        "id": t.id,
        "account_id": t.account_id,
        "type": token_type(t.r#type),
        "owner_user_id": t.owner_user_id,
        "privilege": privilege(t.privilege),
        "effective_privilege": effective_privilege(t.effective_privilege),
        "default_app_state": app_state(t.default_app_state),
        "description": t.description,
        "state": token_state(t.state),
        "creator_user_id": t.creator_user_id,
        "create_time": time_json(t.create_time.as_ref()),
        "update_time": time_json(t.update_time.as_ref()),
        "retire_time": time_json(t.retire_time.as_ref()),
        "promote_time": time_json(t.promote_time.as_ref()),
        "last_used_time": time_json(t.last_used_time.as_ref()),
        "bound_cidrs": t.bound_cidrs,
        "expire_time": time_json(t.expire_time.as_ref()),
        "rotate_time": time_json(t.rotate_time.as_ref()),
        "previous_secret": t.previous_secret.as_ref().map(|p| json!({
            "rotate_time": time_json(p.rotate_time.as_ref()),
            "end_time": time_json(p.end_time.as_ref()),
            "overlap_seconds": p.overlap.as_ref().map_or(0, |d| d.seconds),
        })),
    })
}

/// Until when a rotated-out secret works: its end, or that it waits for the new one's first use.
fn previous_secret(previous: Option<&pb::RotatedSecret>) -> String {
    match previous {
        None => "-".into(),
        Some(p) => match &p.end_time {
            Some(end) => time(Some(end)),
            None => format!(
                "{}s after the new secret's first use",
                p.overlap.as_ref().map_or(0, |d| d.seconds)
            ),
        },
    }
}

/// A duration for people: whole days, hours, minutes or seconds.
pub fn span(d: Option<&prost_types::Duration>) -> String {
    let Some(d) = d else { return "-".into() };
    let s = d.seconds;
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub fn policy_fields(p: &pb::AccountPolicy) -> Vec<(&'static str, String)> {
    vec![
        ("max token lifetime", span(p.max_token_lifetime.as_ref())),
        ("require expiry", p.require_expiry.to_string()),
        (
            "default token lifetime",
            span(p.default_token_lifetime.as_ref()),
        ),
        (
            "expiry notices",
            p.expiry_notice_lead_times
                .iter()
                .map(|d| span(Some(d)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("dormant after", span(p.dormant_after.as_ref())),
        ("retire on reuse", p.retire_on_reuse.to_string()),
    ]
}

pub fn policy_json(p: &pb::AccountPolicy) -> Value {
    let seconds = |d: Option<&prost_types::Duration>| d.map(|d| d.seconds);
    json!({
        "max_token_lifetime_seconds": seconds(p.max_token_lifetime.as_ref()),
        "require_expiry": p.require_expiry,
        "default_token_lifetime_seconds": seconds(p.default_token_lifetime.as_ref()),
        "expiry_notice_lead_seconds": p.expiry_notice_lead_times.iter().map(|d| d.seconds).collect::<Vec<_>>(),
        "dormant_after_seconds": seconds(p.dormant_after.as_ref()),
        "retire_on_reuse": p.retire_on_reuse,
    })
}

pub const APPLICATION_COLUMNS: [&str; 8] = [
    "NAME",
    "STATE",
    "FIRST SEEN",
    "LAST SEEN",
    "REFUSED",
    "ALLOWED",
    "LAST ADDRESS",
    "CONDITIONS",
];

pub fn application_row(a: &pb::Application) -> Vec<String> {
    let evidence = a.evidence.clone().unwrap_or_default();
    vec![
        a.name.clone(),
        app_state(a.state),
        time(a.first_seen_time.as_ref()),
        or_dash(&time(a.last_seen_time.as_ref())),
        evidence.refused_attempts.to_string(),
        evidence.allowed_count.to_string(),
        or_dash(&evidence.last_client_address),
        or_dash(
            &a.conditions
                .as_ref()
                .map(conditions_text)
                .unwrap_or_default(),
        ),
    ]
}

/// An approval's conditions in a few words: `until 2026-01-31T00:00:00Z, at most read_only, from 10.0.0.0/8`.
pub fn conditions_text(c: &pb::ApprovalConditions) -> String {
    let mut parts = Vec::new();
    if let Some(until) = &c.expire_time {
        parts.push(format!("until {}", time(Some(until))));
    }
    if c.max_privilege != 0 {
        parts.push(format!("at most {}", privilege(c.max_privilege)));
    }
    if !c.client_cidrs.is_empty() {
        parts.push(format!("from {}", c.client_cidrs.join(" ")));
    }
    parts.join(", ")
}

pub fn conditions_json(c: &pb::ApprovalConditions) -> Value {
    json!({
        "expire_time": time_json(c.expire_time.as_ref()),
        "max_privilege": (c.max_privilege != 0).then(|| privilege(c.max_privilege)),
        "client_cidrs": c.client_cidrs,
    })
}

pub fn application_json(a: &pb::Application) -> Value {
    let evidence = a.evidence.clone().unwrap_or_default();
    json!({
        "token_id": a.token_id,
        "name": a.name,
        "state": app_state(a.state),
        "conditions": a.conditions.as_ref().map(conditions_json),
        "first_seen_time": time_json(a.first_seen_time.as_ref()),
        "last_seen_time": time_json(a.last_seen_time.as_ref()),
        "update_time": time_json(a.update_time.as_ref()),
        "evidence": {
            "refused_attempts": evidence.refused_attempts,
            "allowed_count": evidence.allowed_count,
            "last_client_address": evidence.last_client_address,
        },
    })
}

pub const MEMBER_COLUMNS: [&str; 4] = ["USER ID", "USER NAME", "ROLE", "SINCE"];

pub fn member_row(m: &pb::Member) -> Vec<String> {
    vec![
        m.user_id.clone(),
        m.user_name.clone(),
        privilege(m.role),
        time(m.create_time.as_ref()),
    ]
}

pub fn member_json(m: &pb::Member) -> Value {
    json!({
        "user_id": m.user_id,
        "account_id": m.account_id,
        "user_name": m.user_name,
        "role": privilege(m.role),
        "create_time": time_json(m.create_time.as_ref()),
        "update_time": time_json(m.update_time.as_ref()),
    })
}
