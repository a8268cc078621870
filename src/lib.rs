//! api-tokens: API tokens with per-application approval, as a gRPC service.
//!
//! `domain` holds the rules, `service` the use cases, `storage` the database and
//! `grpc` the wire; `startup` assembles a server from them and `cli` drives it.
pub mod admin;
pub mod background;
pub mod bot;
pub mod cli;
pub mod code_name;
pub mod console;
pub mod domain;
pub mod flags;
pub mod grpc;
pub mod health;
pub mod layers;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod operations;
pub mod service;
pub mod startup;
pub mod storage;
pub mod telemetry;
