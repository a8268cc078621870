//! The reference model of the rules (model.rs) and generated histories of calls checked against
//! it on real servers: SQLite (one server) in `cargo test`, PostgreSQL (two replicas on one
//! database) in `cargo test -- --ignored`.
//!
//! `MODEL_SEED=<seed>` replays one history (the seed a failure prints); `MODEL_HISTORIES=<n>`
//! sets how many run; `MODEL_LONG=1` runs ten times the default.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod history;
mod model;
mod server;
mod steps;

use common::Backend;
use history::{Plan, STEPS, Tally};
use server::Servers;

/// Histories per run by default: about two minutes of SQLite on two cores.
const SQLITE_HISTORIES: u64 = 400;
/// On PostgreSQL (two replicas): about three minutes.
const POSTGRES_HISTORIES: u64 = 250;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// A history's seed from the run's base seed: histories of one run are independent.
fn seed_of(base: u64, i: u64) -> u64 {
    steps::Rng::new(base ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next()
}

async fn run(backend: Backend, test: &str, default: u64) {
    let servers = Servers::start(backend).await;
    let (base, count, one) = match env_u64("MODEL_SEED") {
        Some(seed) => (seed, 1, true),
        None => {
            let long = std::env::var("MODEL_LONG").is_ok_and(|v| v == "1");
            let count = env_u64("MODEL_HISTORIES").unwrap_or(default * if long { 10 } else { 1 });
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            (base, count, false)
        }
    };
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    for i in 0..count {
        let seed = if one { base } else { seed_of(base, i) };
        let plan = Plan::Generate { seed, steps: STEPS };
        let played = history::play(&servers, &plan, &mut tally).await;
        if played.failed {
            let first = history::report(&played);
            let shrunk = history::shrink(&servers, played, &mut tally).await;
            tally.print(test);
            let ignored = if backend == Backend::Postgres {
                " -- --ignored"
            } else {
                ""
            };
            panic!(
                "history {i} (seed {seed}) disagrees with the model.\n\
                 Shrunk to {} steps:\n{}\n\
                 Reproduce: MODEL_SEED={seed} cargo test --test model {test}{ignored}\n\
                 The history as generated:\n{first}",
                shrunk.steps.len(),
                history::report(&shrunk),
            );
        }
    }
    tally.print(test);
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_on_sqlite() {
    run(Backend::Sqlite, "histories_on_sqlite", SQLITE_HISTORIES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn histories_on_postgres() {
    run(
        Backend::Postgres,
        "histories_on_postgres",
        POSTGRES_HISTORIES,
    )
    .await;
}

/// Histories written by hand for the places where the docs had to be made precise (each is
/// named by what it pins down); they run through the same comparison as the generated ones.
fn fixed_histories() -> Vec<(&'static str, Vec<steps::Step>)> {
    use api_tokens::grpc::pb::{AppState, Privilege};
    use model::{AppDecision, PolicyChange, Presented};
    use steps::{Call, Step};
    let by = |secret: usize, app: usize, call: Call| Step {
        who: Presented::Secret(secret),
        app,
        replica: 0,
        call,
    };
    let decision = |token: usize, app: usize, state, cap| AppDecision {
        token: Some(token),
        name: steps::APPS[app].into(),
        state,
        cap,
    };
    vec![
        (
            "only the first reuse of a rotated-out secret is judged by retire_on_reuse",
            vec![
                by(
                    0,
                    0,
                    Call::RotateToken {
                        target: Some(0),
                        overlap: 0,
                    },
                ),
                by(0, 0, Call::GetAccount),
                by(
                    2,
                    0,
                    Call::SetAccountPolicy {
                        change: PolicyChange::RetireOnReuse(true),
                    },
                ),
                by(0, 0, Call::GetAccount),
                by(2, 0, Call::GetAccount),
            ],
        ),
        (
            "a batch is judged by its caller as it stood when the call began",
            vec![by(
                0,
                0,
                Call::BatchSetApplicationStates {
                    decisions: vec![
                        decision(0, 0, AppState::Allow, Some(Privilege::ReadOnly)),
                        decision(0, 1, AppState::Deny, None),
                    ],
                },
            )],
        ),
        (
            "a secret within its overlap when its token is retired is refused as retired",
            vec![
                by(
                    0,
                    0,
                    Call::RotateToken {
                        target: Some(0),
                        overlap: model::HOUR,
                    },
                ),
                by(2, 0, Call::RetireToken { target: Some(0) }),
                by(0, 0, Call::GetAccount),
                by(
                    0,
                    0,
                    Call::Authorize {
                        required: Privilege::ReadOnly,
                    },
                ),
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_histories_on_sqlite() {
    let servers = Servers::start(Backend::Sqlite).await;
    let mut tally = Tally::default();
    for (name, steps) in fixed_histories() {
        let played = history::play(&servers, &Plan::Replay(steps), &mut tally).await;
        assert!(!played.failed, "{name}:\n{}", history::report(&played));
    }
}
