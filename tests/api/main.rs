//! RPC behaviour over a real socket, one scenario a module: the in-process server on SQLite and
//! PostgreSQL, called with real tonic clients (one test binary, so `common` compiles once).
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod addresses;
mod api_tokens_page;
mod approvals;
mod batch_approvals;
mod console;
mod evidence;
mod expiry;
mod ext_authz;
mod foundation;
mod guessing;
mod hostile_fields;
mod hostile_input;
mod hot_path;
mod idempotency;
mod leaks;
mod lifecycle;
mod notices;
mod permissions;
mod preview_refusals;
mod previews;
mod rotation;
mod security;
mod warm_authorize;
