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

pub const TOKEN_HEADER: [&str; 7] = [
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
        privilege(t.effective_privilege),
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
        ("effective privilege", privilege(t.effective_privilege)),
        ("default app state", app_state(t.default_app_state)),
        ("state", token_state(t.state)),
        ("description", or_dash(&t.description)),
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
        "effective_privilege": privilege(t.effective_privilege),
        "default_app_state": app_state(t.default_app_state),
        "description": t.description,
        "state": token_state(t.state),
        "creator_user_id": t.creator_user_id,
        "create_time": time_json(t.create_time.as_ref()),
        "update_time": time_json(t.update_time.as_ref()),
        "retire_time": time_json(t.retire_time.as_ref()),
        "promote_time": time_json(t.promote_time.as_ref()),
        "last_used_time": time_json(t.last_used_time.as_ref()),
    })
}

pub const APPLICATION_HEADER: [&str; 4] = ["NAME", "STATE", "FIRST SEEN", "LAST SEEN"];

pub fn application_row(a: &pb::Application) -> Vec<String> {
    vec![
        a.name.clone(),
        app_state(a.state),
        time(a.first_seen_time.as_ref()),
        or_dash(&time(a.last_seen_time.as_ref())),
    ]
}

pub fn application_json(a: &pb::Application) -> Value {
    json!({
        "token_id": a.token_id,
        "name": a.name,
        "state": app_state(a.state),
        "first_seen_time": time_json(a.first_seen_time.as_ref()),
        "last_seen_time": time_json(a.last_seen_time.as_ref()),
        "update_time": time_json(a.update_time.as_ref()),
    })
}

pub const MEMBER_HEADER: [&str; 4] = ["USER ID", "USER NAME", "ROLE", "SINCE"];

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
    }
}
