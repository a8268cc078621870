//! How the admin commands print: aligned tables for people, JSON for scripts.
use chrono::{DateTime, SecondsFormat};
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::grpc::pb;

/// Output format of the admin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[value(alias = "text")]
    Table,
    /// One JSON document (a JSON object per line for `watch`).
    Json,
}

/// Writes a line to stdout. A reader that went away (`| head`) is not an error worth a
/// panic, which `println!` would make of it: the line is dropped and `false` returned.
pub fn emit(line: impl std::fmt::Display) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    emit(table(header, rows).trim_end());
}

pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Prints "key  value" lines, for one resource.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        emit(format!("{key:<width$}  {value}"));
    }
}

pub fn print_json(value: &Value) {
    emit(format!("{value:#}"));
}

/// A resource the commands print: a row under its columns, or a JSON object.
pub trait Listed {
    const COLUMNS: &'static [&'static str];
    fn row(&self) -> Vec<String>;
    fn json(&self) -> Value;
}

/// Prints resources as a table, or as one JSON array.
pub fn print_list<T: Listed>(output: Output, items: &[T]) {
    match output {
        Output::Json => print_json(&Value::Array(items.iter().map(T::json).collect())),
        Output::Table => print_table(T::COLUMNS, &items.iter().map(T::row).collect::<Vec<_>>()),
    }
}

/// Prints one resource as a one-row table, or as a JSON object.
pub fn print_one<T: Listed>(output: Output, item: &T) {
    match output {
        Output::Json => print_json(&item.json()),
        Output::Table => print_table(T::COLUMNS, &[item.row()]),
    }
}

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

/// `PRIVILEGE_READ_ONLY` with prefix `PRIVILEGE_` reads `read_only`: the spelling the flags take.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

pub fn privilege(value: i32) -> String {
    pb::Privilege::try_from(value)
        .map(|p| short(p.as_str_name(), "PRIVILEGE_"))
        .unwrap_or_else(|_| value.to_string())
}

/// A token's effective privilege: `none` when it acts with none (retired, or its owner removed),
/// which the API spells PRIVILEGE_UNSPECIFIED.
pub fn effective_privilege(value: i32) -> String {
    if value == pb::Privilege::Unspecified as i32 {
        "none".to_owned()
    } else {
        privilege(value)
    }
}

pub fn app_state(value: i32) -> String {
    pb::AppState::try_from(value)
        .map(|s| short(s.as_str_name(), "APP_STATE_"))
        .unwrap_or_else(|_| value.to_string())
}

pub fn token_type(value: i32) -> String {
    pb::TokenType::try_from(value)
        .map(|t| short(t.as_str_name(), "TOKEN_TYPE_"))
        .unwrap_or_else(|_| value.to_string())
}

pub fn token_state(value: i32) -> String {
    pb::TokenState::try_from(value)
        .map(|s| short(s.as_str_name(), "TOKEN_STATE_"))
        .unwrap_or_else(|_| value.to_string())
}

pub fn watch_event(value: i32) -> String {
    pb::WatchEventType::try_from(value)
        .map(|t| short(t.as_str_name(), "WATCH_EVENT_TYPE_"))
        .unwrap_or_else(|_| value.to_string())
}

/// RFC 3339 in UTC, or empty when unset.
pub fn time(t: Option<&Timestamp>) -> String {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn time_json(t: Option<&Timestamp>) -> Value {
    match time(t) {
        s if s.is_empty() => Value::Null,
        s => Value::String(s),
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

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

/// A batch's results, one per decision asked: what it did, or why it was refused.
pub fn print_results(
    output: Output,
    asked: &[pb::ApplicationDecision],
    results: &[pb::ApplicationDecisionResult],
) {
    let rows: Vec<(String, String, String, String)> = asked
        .iter()
        .zip(results)
        .map(|(d, r)| {
            let outcome = if r.code != 0 {
                format!("refused: {} ({})", r.reason, r.message)
            } else if r.changed {
                "changed".to_owned()
            } else {
                "unchanged".to_owned()
            };
            (
                d.token_id.clone(),
                d.name.clone(),
                app_state(d.state),
                outcome,
            )
        })
        .collect();
    match output {
        Output::Json => print_json(&json!(
            rows.iter()
                .zip(results)
                .map(|((token, name, state, _), r)| json!({
                    "token_id": token,
                    "name": name,
                    "state": state,
                    "changed": r.changed,
                    "code": r.code,
                    "reason": r.reason,
                    "message": r.message,
                    "application": r.application.as_ref().map(application_json),
                }))
                .collect::<Vec<_>>()
        )),
        Output::Table => print_table(
            &["TOKEN", "NAME", "STATE", "OUTCOME"],
            &rows
                .into_iter()
                .map(|(t, n, s, o)| vec![t, n, s, o])
                .collect::<Vec<_>>(),
        ),
    }
}

/// An impact preview: whether the change may be made, whose privilege drops, who used the
/// affected tokens lately.
pub fn print_preview(output: Output, p: &pb::ImpactPreview) {
    match output {
        Output::Json => print_json(&json!({
            "permitted": p.permitted,
            "denied_reason": p.denied_reason,
            "denied_message": p.denied_message,
            "usage_window_days": p.usage_window_days,
            "privilege_drops": p.privilege_drops.iter().map(|d| json!({
                "token_id": d.token_id,
                "description": d.description,
                "before": privilege(d.before),
                "after": privilege(d.after),
            })).collect::<Vec<_>>(),
            "recently_used": p.recently_used.iter().map(application_json).collect::<Vec<_>>(),
        })),
        Output::Table => {
            if !p.permitted {
                emit(format!(
                    "not permitted: {} ({})",
                    p.denied_reason, p.denied_message
                ));
                return;
            }
            emit("permitted; nothing was changed (validate only)");
            if !p.privilege_drops.is_empty() {
                emit("\ntokens whose effective privilege would drop:");
                print_table(
                    &["TOKEN", "DESCRIPTION", "NOW", "AFTER"],
                    &p.privilege_drops
                        .iter()
                        .map(|d| {
                            vec![
                                d.token_id.clone(),
                                or_dash(&d.description),
                                privilege(d.before),
                                if d.after == 0 {
                                    "cannot act".into()
                                } else {
                                    privilege(d.after)
                                },
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            emit(format!(
                "\napplications seen in the last {} days: {}",
                p.usage_window_days,
                p.recently_used.len()
            ));
            if !p.recently_used.is_empty() {
                print_table(
                    &["TOKEN", "NAME", "STATE", "LAST SEEN", "ALLOWED", "REFUSED"],
                    &p.recently_used
                        .iter()
                        .map(|a| {
                            let e = a.evidence.clone().unwrap_or_default();
                            vec![
                                a.token_id.clone(),
                                a.name.clone(),
                                app_state(a.state),
                                time(a.last_seen_time.as_ref()),
                                e.allowed_count.to_string(),
                                e.refused_attempts.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
}

/// The `watch` table. Rows are printed as events arrive, so widths are fixed before any row:
/// event, time, token and state by their longest possible value, the cursor by the first
/// event's (the server's cursors all have one length), and the name, the only free text, last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTable {
    widths: [usize; 5],
}

impl WatchTable {
    pub const HEADER: [&'static str; 6] = ["EVENT", "TIME", "TOKEN", "STATE", "CURSOR", "NAME"];

    pub fn new(first_cursor: &str) -> Self {
        // Every value a closed enum can take, by its short name.
        let longest = |name: fn(i32) -> String, header: &str| {
            (0..64)
                .map(name)
                .filter(|n| n.parse::<i32>().is_err())
                .map(|n| n.chars().count())
                .chain([header.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let time = "2006-01-02T15:04:05Z".len();
        let uuid = "00000000-0000-0000-0000-000000000000".len();
        WatchTable {
            widths: [
                longest(watch_event, "EVENT"),
                time.max("TIME".len()),
                uuid.max("TOKEN".len()),
                longest(app_state, "STATE"),
                first_cursor.chars().count().max("CURSOR".len()),
            ],
        }
    }

    fn line(&self, cells: [&str; 6]) -> String {
        let mut out = String::new();
        for (cell, width) in cells.iter().zip(&self.widths) {
            out.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(cells[5]);
        out.trim_end().to_owned()
    }

    pub fn header(&self) -> String {
        self.line(Self::HEADER)
    }

    /// One event; SNAPSHOT_END and HEARTBEAT concern no application, so their
    /// application cells are empty.
    pub fn row(&self, event: &pb::WatchApplicationsResponse) -> String {
        let (token, state, name) = match &event.application {
            Some(a) => (a.token_id.as_str(), app_state(a.state), a.name.as_str()),
            None => ("", String::new(), ""),
        };
        self.line([
            &watch_event(event.r#type),
            &time(event.event_time.as_ref()),
            token,
            &state,
            &event.cursor,
            name,
        ])
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let text = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "short".into()],
                vec!["22222".into(), "x".into()],
            ],
        );
        assert_eq!(text, "ID     NAME\n1      short\n22222  x\n");
    }

    #[test]
    fn enum_names_read_like_the_flags() {
        assert_eq!(privilege(pb::Privilege::ReadOnly as i32), "read_only");
        assert_eq!(app_state(pb::AppState::Deny as i32), "deny");
        assert_eq!(token_type(pb::TokenType::Account as i32), "account");
        assert_eq!(privilege(99), "99");
        assert_eq!(
            effective_privilege(pb::Privilege::Unspecified as i32),
            "none"
        );
        assert_eq!(effective_privilege(pb::Privilege::Normal as i32), "normal");
    }

    /// The byte offset where each column starts, taken from the header's gaps.
    fn starts(header: &str) -> Vec<usize> {
        WatchTable::HEADER
            .iter()
            .map(|h| header.find(h).expect("column in header"))
            .collect()
    }

    #[test]
    fn watch_rows_line_up_under_the_header() {
        let cursor = "AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let table = WatchTable::new(cursor);
        let header = table.header();
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        let app = |name: &str, state: pb::AppState| pb::Application {
            token_id: "4054d027-4650-4dff-a1a0-e9558ddaf048".into(),
            name: name.into(),
            state: state.into(),
            ..Default::default()
        };
        let events = [
            pb::WatchApplicationsResponse {
                r#type: pb::WatchEventType::Snapshot.into(),
                application: Some(app(
                    "a very long application name v1.2.3",
                    pb::AppState::Pending,
                )),
                cursor: cursor.into(),
                event_time: at(1_700_000_000),
                ..Default::default()
            },
            pb::WatchApplicationsResponse {
                r#type: pb::WatchEventType::SnapshotEnd.into(),
                application: None,
                cursor: cursor.into(),
                event_time: at(1_700_000_001),
                ..Default::default()
            },
            pb::WatchApplicationsResponse {
                r#type: pb::WatchEventType::StateChanged.into(),
                application: Some(app("x", pb::AppState::Allow)),
                cursor: cursor.into(),
                event_time: at(1_700_000_002),
                ..Default::default()
            },
        ];
        let columns = starts(&header);
        for event in &events {
            let row = table.row(event);
            let mut expected = vec![watch_event(event.r#type), time(event.event_time.as_ref())];
            if let Some(a) = &event.application {
                expected.extend([
                    a.token_id.clone(),
                    app_state(a.state),
                    cursor.to_owned(),
                    a.name.clone(),
                ]);
            }
            for (value, start) in expected.iter().zip(&columns) {
                assert_eq!(
                    row.get(*start..*start + value.len()),
                    Some(value.as_str()),
                    "{value:?} not under its header column:\n{header}\n{row}"
                );
            }
        }
        let end = table.row(&events[1]);
        assert!(
            !end.contains("unspecified") && end.ends_with(cursor),
            "a snapshot end has no application cells:\n{end}"
        );
    }
}
