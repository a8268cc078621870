//! Histories: generated steps played on the model and on the real server side by side, every
//! answer compared, then the final reads (every token, application, member and secret); a
//! failing history is shrunk by dropping steps and printed as numbered steps.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{Answer, Model, Presented, View};
use crate::server::{self, Ids, Servers};
use crate::steps::{self, Call, Rng, Step};
use api_tokens::grpc::pb::Privilege;

/// Random steps after the prologue.
pub const STEPS: usize = 30;

/// What was compared, so a reader sees the run was not vacuous.
#[derive(Default)]
pub struct Tally {
    pub histories: u64,
    pub steps: u64,
    pub calls: u64,
    /// Answers by code and reason (Authorize: by decision).
    pub answers: BTreeMap<String, u64>,
    /// Calls by the kind of caller (the model's judgement before the call).
    pub callers: BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, answer: &Answer) {
        let key = match answer {
            Ok(View::Authorized(decision, _)) => format!("Authorize {}", decision.as_str_name()),
            Ok(_) => "OK".into(),
            Err(refusal) => format!("{:?} {}", refusal.code, refusal.reason),
        };
        *self.answers.entry(key).or_default() += 1;
        self.calls += 1;
    }

    pub fn print(&self, run: &str) {
        eprintln!(
            "{run}: {} histories, {} generated steps, {} calls compared with the model",
            self.histories, self.steps, self.calls
        );
        eprintln!("answers compared, by code and reason (Authorize: by decision):");
        for (answer, n) in &self.answers {
            eprintln!("  {n:>7}  {answer}");
        }
        eprintln!("generated steps by the kind of caller:");
        for (caller, n) in &self.callers {
            eprintln!("  {n:>7}  {caller}");
        }
    }
}

/// One step as played: what it was, what the model said, what the server answered.
pub struct Record {
    pub text: String,
    pub expected: Answer,
    pub actual: Answer,
}

/// A played history: its generated steps (resolved, so a replay is the same history) and the
/// records of every call, the last one the mismatch if it failed.
pub struct Played {
    pub steps: Vec<Step>,
    pub records: Vec<Record>,
    pub failed: bool,
}

/// Where a history's steps come from.
pub enum Plan {
    Generate { seed: u64, steps: usize },
    Replay(Vec<Step>),
}

static HISTORY: AtomicU64 = AtomicU64::new(0);

/// One step on the model and the server; false if their answers differ.
async fn step(
    servers: &Servers,
    model: &mut Model,
    ids: &mut Ids,
    step: &Step,
    records: &mut Vec<Record>,
    tally: &mut Tally,
) -> bool {
    let text = steps::describe(model, step);
    let before = model.clone();
    let expected = steps::apply(model, step);
    // A replica reads its own writes; after another replica's, it is asked to read at least
    // as far as the log's head.
    let switched = step.replica != ids.replica;
    let head = if switched { servers.head().await } else { None };
    let revision = head.or(ids.revision.take());
    let reused = reuses(model) > reuses(&before);
    let position = if reused { servers.log_head().await } else { 0 };
    let actual = server::call(servers, ids, &before, step, revision.as_deref()).await;
    ids.replica = step.replica;
    if reused {
        // A reuse is recorded behind the refused call (docs/permissions.md, rule 9): wait for
        // it, and have the next call read at least that far.
        servers.wait_past(position).await;
        ids.revision = Some(servers.app.local.revision_after_write().await);
    }
    tally.count(&actual);
    let same = expected == actual;
    records.push(Record {
        text,
        expected,
        actual,
    });
    same && streams(model, ids, records, tally, false).await
}

/// Compares the streams' ends with the model's: one the model ended is waited for (up to 5 s:
/// on another replica the change arrives through the change log); one it keeps open must not
/// have ended. `last`: the history is over, and every stream still open is compared as open.
async fn streams(
    model: &Model,
    ids: &mut Ids,
    records: &mut Vec<Record>,
    tally: &mut Tally,
    last: bool,
) -> bool {
    for (i, stream) in model.streams.iter().enumerate() {
        let Some(watching) = ids.streams.get_mut(i) else {
            continue;
        };
        let wait = match stream.ended {
            Some(_) => std::time::Duration::from_secs(5),
            None => std::time::Duration::ZERO,
        };
        let ended = watching.end(wait).await;
        if watching.compared || (stream.ended.is_none() && ended.is_none() && !last) {
            continue;
        }
        watching.compared = true;
        let expected = stream.ended.map_or(Ok(View::Empty), Err);
        let actual = ended.map_or(Ok(View::Empty), Err);
        let key = match &actual {
            Ok(_) => "stream still open".to_string(),
            Err(r) => format!("stream ended {:?} {}", r.code, r.reason),
        };
        *tally.answers.entry(key).or_default() += 1;
        let opener = format!("S{} as {}", stream.secret, stream.app);
        let text = format!("stream W{i} (opened by {opener}): how it ends (OK: still open)");
        let same = expected == actual;
        records.push(Record {
            text,
            expected,
            actual,
        });
        if !same {
            return false;
        }
    }
    true
}

fn reuses(model: &Model) -> usize {
    model.secrets.iter().filter(|s| s.reuse_recorded).count()
}

/// The reads that end every history: each secret says who it is and what it sees; then a fresh
/// Admin token of each account reads its account, members, tokens and every token's
/// applications.
fn final_reads(model: &Model, phase: usize) -> Vec<Step> {
    let as_secret = |s: usize, app: usize, call: Call| Step {
        who: Presented::Secret(s),
        app,
        replica: s % 2,
        call,
    };
    match phase {
        0 => (0..model.secrets.len())
            .flat_map(|s| {
                [
                    as_secret(s, 0, Call::GetAccount),
                    as_secret(
                        s,
                        1,
                        Call::ListTokens {
                            page_size: 50,
                            continued: false,
                        },
                    ),
                ]
            })
            .collect(),
        _ => {
            let account = phase - 1;
            if account >= model.accounts.len() {
                return Vec::new();
            }
            let admin = (0..model.members.len()).find(|&m| {
                let member = &model.members[m];
                member.account == account && !member.removed && member.role == Privilege::Admin
            });
            let Some(admin) = admin else {
                return Vec::new();
            };
            let issue = Step {
                who: Presented::Nothing,
                app: 0,
                replica: 0,
                call: Call::Issue { member: admin },
            };
            // The fresh token's secret is the next one.
            let fresh = model.secrets.len();
            let mut reads = vec![
                issue,
                as_secret(fresh, 0, Call::GetAccount),
                as_secret(fresh, 0, Call::ListMembers),
                as_secret(
                    fresh,
                    0,
                    Call::ListTokens {
                        page_size: 50,
                        continued: false,
                    },
                ),
            ];
            for t in (0..model.tokens.len()).filter(|&t| model.tokens[t].account == account) {
                reads.push(as_secret(
                    fresh,
                    0,
                    Call::ListApplications { target: Some(t) },
                ));
            }
            reads
        }
    }
}

/// Plays one history on fresh accounts.
pub async fn play(servers: &Servers, plan: &Plan, tally: &mut Tally) -> Played {
    let mut model = Model::default();
    let mut ids = Ids::default();
    let n = HISTORY.fetch_add(1, Ordering::Relaxed);
    let tag = format!("h{n}-{}", uuid::Uuid::new_v4().simple());
    server::bootstrap(servers, &mut model, &mut ids, &tag[..12]).await;
    let mut records = Vec::new();
    let mut played = Vec::new();
    let (mut rng, count, replay) = match plan {
        Plan::Generate { seed, steps } => (Rng::new(*seed), *steps, None),
        Plan::Replay(steps) => (Rng::new(0), steps.len(), Some(steps)),
    };
    let prologue = steps::prologue(&mut rng);
    let total = if replay.is_some() {
        count
    } else {
        prologue.len() + count
    };
    tally.histories += 1;
    for i in 0..total {
        let next = match replay {
            Some(steps) => steps[i].clone(),
            None if i < prologue.len() => prologue[i].clone(),
            None => steps::generate(&mut rng, &model),
        };
        let mut next = steps::resolve(&next, &model);
        next.replica %= servers.replicas();
        played.push(next.clone());
        tally.steps += 1;
        *tally
            .callers
            .entry(steps::caller_kind(&model, &next))
            .or_default() += 1;
        if !step(servers, &mut model, &mut ids, &next, &mut records, tally).await {
            return Played {
                steps: played,
                records,
                failed: true,
            };
        }
    }
    for phase in 0..=model.accounts.len() {
        for mut read in final_reads(&model, phase) {
            read.replica %= servers.replicas();
            if !step(servers, &mut model, &mut ids, &read, &mut records, tally).await {
                return Played {
                    steps: played,
                    records,
                    failed: true,
                };
            }
        }
    }
    let failed = !streams(&model, &mut ids, &mut records, tally, true).await;
    Played {
        steps: played,
        records,
        failed,
    }
}

/// Drops steps while the history still fails: halves, then quarters, down to single steps.
pub async fn shrink(servers: &Servers, failing: Played, tally: &mut Tally) -> Played {
    let mut best = failing;
    let mut chunk = best.steps.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < best.steps.len() {
            let mut candidate = best.steps.clone();
            candidate.drain(start..(start + chunk).min(candidate.len()));
            let played = play(servers, &Plan::Replay(candidate), tally).await;
            if played.failed {
                best = played;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            return best;
        }
        chunk = chunk.div_ceil(2);
    }
}

fn answer_text(answer: &Answer) -> String {
    match answer {
        Err(refusal) => format!("{:?} {}", refusal.code, refusal.reason),
        Ok(View::Authorized(decision, principal)) => {
            format!("{} {principal:?}", decision.as_str_name())
        }
        Ok(View::Empty) => "OK".into(),
        Ok(view) => format!("OK {view:?}"),
    }
}

/// The history as numbered steps a person can follow.
pub fn report(played: &Played) -> String {
    let mut text = String::new();
    let last = played.records.len().saturating_sub(1);
    for (i, record) in played.records.iter().enumerate() {
        let _ = writeln!(text, "{:>3}. {}", i + 1, record.text);
        if i == last && played.failed {
            let _ = writeln!(
                text,
                "     model expected: {}",
                answer_text(&record.expected)
            );
            let _ = writeln!(
                text,
                "     server answered: {}",
                answer_text(&record.actual)
            );
        } else {
            let _ = writeln!(
                text,
                "     answered (as expected): {}",
                answer_text(&record.actual)
            );
        }
    }
    text
}
