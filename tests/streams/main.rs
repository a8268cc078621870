//! Streams and replicas: WatchApplications, the change log, revocation of open streams, two
//! server processes on one database, and connection rebalancing; one scenario a module.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod change_log;
mod rebalancing;
mod rechecks;
mod replicas;
mod revocation;
mod watch;
