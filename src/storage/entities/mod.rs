//! sea-orm entities, one per table. They never leave `storage`: the repository
//! converts them to domain types.
pub mod accounts;
pub mod app_events;
pub mod applications;
pub mod audit_events;
pub mod change_log;
pub mod members;
pub mod rotated_secrets;
pub mod tokens;
