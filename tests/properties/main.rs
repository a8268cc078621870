//! Property-based tests: the domain rules, random call sequences against a real server, and
//! the fuzz targets' oracles on stable; one group a module.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod domain;
mod fuzz_inputs;
mod members;
mod server;
