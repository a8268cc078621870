//! The real `api-tokens` binary as operators run it: serve, the admin commands, the approval
//! bot and notifier, backups, upgrades, crashes and outages; one scenario a module.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod admin_cli;
mod admin_lifecycle;
mod admin_watch;
mod approve_bot;
mod backup;
mod binary;
mod crash;
mod durability;
mod limits;
mod notify;
mod operations;
mod outage;
mod passwords;
mod postgres_role;
mod settings;
mod upgrades;
