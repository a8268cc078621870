//! One stream's watcher: who watches, what it filters by, and which changes concern it or
//! make an event it may see.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AppChange, TokenEvent, WatchEvent};
use crate::domain::{AppState, Caller};
use crate::service::Credentials;
use crate::storage::{AppChangeKind, Change, LAPSE_REASON, LoggedChange, TokenChange};
/// Which stream: applications in some states, or tokens' lifecycle events.
pub(super) enum Topic {
    Applications { states: Vec<AppState> },
    TokenEvents,
}

/// One stream: who watches (judged again as changes come), what it filters by, where it is.
pub(super) struct Watcher {
    pub(super) credentials: Credentials,
    pub(super) caller: Caller,
    /// When the credentials stop working by the clock alone (expiry, the end of a rotated-out
    /// secret's overlap): nothing is logged then, so the stream judges itself again.
    pub(super) deadline: Option<DateTime<Utc>>,
    pub(super) topic: Topic,
    pub(super) token_id: Option<Uuid>,
}

impl Watcher {
    /// Whether a change could alter what this caller may do or see.
    pub(super) fn concerns_caller(&self, change: &LoggedChange) -> bool {
        if change.account_id != self.caller.account_id {
            return false;
        }
        match &change.change {
            Change::Token { token_id, .. } => {
                *token_id == self.caller.token_id || Some(*token_id) == self.token_id
            }
            Change::Member { member_id, .. } => Some(*member_id) == self.caller.member_id,
            Change::Application { token_id, name, .. } => {
                *token_id == self.caller.token_id && *name == self.credentials.app
            }
        }
    }

    /// Whether the caller may see events of this change's token, and the stream is about it.
    fn sees_token_of(&self, change: &LoggedChange, token_id: Uuid) -> bool {
        change.token.is_some_and(|token| {
            self.token_id.is_none_or(|t| t == token_id)
                && self
                    .caller
                    .can_see_token(change.account_id, token.token_type, token.owner_id)
        })
    }

    /// The event this change makes for this caller, if it may see it.
    pub(super) fn event(&self, change: &LoggedChange) -> Option<WatchEvent> {
        match &self.topic {
            Topic::Applications { states } => self.application_event(states, change),
            Topic::TokenEvents => self.token_event(change),
        }
    }

    fn token_event(&self, change: &LoggedChange) -> Option<WatchEvent> {
        let Change::Token { token_id, what } = &change.change else {
            return None;
        };
        // Plain updates (privilege, description, ...) are not lifecycle events.
        if *what == TokenChange::Updated || !self.sees_token_of(change, *token_id) {
            return None;
        }
        Some(WatchEvent::Token(TokenEvent {
            token_id: *token_id,
            what: what.clone(),
            at: change.at,
        }))
    }

    fn application_event(&self, states: &[AppState], change: &LoggedChange) -> Option<WatchEvent> {
        let Change::Application {
            token_id,
            name,
            state,
            kind,
            conditions,
            reason,
        } = &change.change
        else {
            return None;
        };
        if !states.contains(state) || !self.sees_token_of(change, *token_id) {
            return None;
        }
        let reason = match kind {
            AppChangeKind::Lapsed => Some(LAPSE_REASON.to_owned()),
            _ => reason.clone(),
        };
        let app = AppChange {
            token_id: *token_id,
            name: name.clone(),
            state: *state,
            at: change.at,
            conditions: conditions.clone(),
            reason,
            seen: change.seen.clone(),
        };
        Some(match kind {
            AppChangeKind::Recorded => WatchEvent::Recorded(app),
            AppChangeKind::StateChanged | AppChangeKind::Lapsed => WatchEvent::StateChanged(app),
        })
    }
}
