//! How the admin commands print: aligned tables for people, JSON for scripts. The resources'
//! rows and JSON in `resources`, batch results and impact previews in `preview`, the streaming
//! `watch` table in `watch_table`.
mod preview;
mod resources;
mod watch_table;

use chrono::{DateTime, SecondsFormat};
use prost_types::Timestamp;
use serde_json::Value;

use crate::grpc::pb;

pub use preview::{previewed, print_results};
pub use resources::{application_json, policy_fields, policy_json, token_fields, token_json};
pub use watch_table::WatchTable;

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

/// An enum value by its short name (`PRIVILEGE_READ_ONLY` with prefix `PRIVILEGE_` reads
/// `read_only`: the spelling the flags take), or by its number when this client does not know it.
fn short<E: TryFrom<i32>>(value: i32, prefix: &str, name: fn(&E) -> &'static str) -> String {
    match E::try_from(value) {
        Ok(known) => {
            let name = name(&known);
            name.strip_prefix(prefix)
                .unwrap_or(name)
                .to_ascii_lowercase()
        }
        Err(_) => value.to_string(),
    }
}

pub fn privilege(value: i32) -> String {
    short(value, "PRIVILEGE_", pb::Privilege::as_str_name)
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
    short(value, "APP_STATE_", pb::AppState::as_str_name)
}

pub fn token_type(value: i32) -> String {
    short(value, "TOKEN_TYPE_", pb::TokenType::as_str_name)
}

pub fn token_state(value: i32) -> String {
    short(value, "TOKEN_STATE_", pb::TokenState::as_str_name)
}

pub fn watch_event(value: i32) -> String {
    short(value, "WATCH_EVENT_TYPE_", pb::WatchEventType::as_str_name)
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
}
