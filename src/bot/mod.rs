//! The reference approval bot: watches pending applications and allows or denies them by rules.
mod rules;
mod run;

pub use rules::{Action, Rule, Rules};
pub use run::{BotSettings, run_bot};
