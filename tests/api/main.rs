//! RPC behaviour over a real socket, one scenario a module: the in-process server on SQLite and
//! PostgreSQL, called with real tonic clients (one test binary, so `common` compiles once).
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod addresses;
mod api_tokens_page;
mod approval_caps;
mod approvals;
mod batch_approvals;
mod console;
mod echoed_input;
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
mod mapped_addresses;
mod notices;
mod permissions;
mod preview_refusals;
mod previews;
mod rotated_secrets;
mod rotation;
mod security;
mod stepped_clock;
mod time_limits;
mod warm_authorize;
