//! The `watch` command's table, printed one row at a time as events arrive.
use super::{app_state, time, watch_event};
use crate::grpc::pb;

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

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

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
