//! A history's steps: who calls what on which replica, generated from a seed with the model in
//! hand (so most callers hold a secret that still works), applied to the model, and printed as
//! a person would read them.
use api_tokens::grpc::pb::{AppState, Privilege, TokenType};

use crate::model::{
    AccountIx, Answer, AppDecision, Change, HOUR, MemberIx, Model, PolicyChange, Presented, TokenIx,
};

/// The application names callers use; few, so approvals and their caps meet their callers.
pub const APPS: [&str; 2] = ["app-0", "app-1"];
/// User names AddMember picks from (the first is every bootstrap Admin's).
pub const NAMES: [&str; 3] = ["admin@example.com", "ann@example.com", "bob@example.com"];

/// One call. Indices into the model's tokens, members and secrets are taken modulo their
/// number when a shrunk history replays (`resolve`), so every sub-history still runs.
#[derive(Clone, Debug)]
pub struct Step {
    pub who: Presented,
    pub app: usize,
    pub replica: usize,
    pub call: Call,
}

#[derive(Clone, Debug)]
pub enum Call {
    Authorize {
        required: Privilege,
    },
    CreateToken {
        kind: TokenType,
        privilege: Privilege,
        default_app_state: AppState,
        expire_days: Option<i64>,
    },
    GetToken {
        target: Option<TokenIx>,
    },
    ListTokens {
        page_size: usize,
        continued: bool,
    },
    UpdateToken {
        target: Option<TokenIx>,
        change: Change,
    },
    RetireToken {
        target: Option<TokenIx>,
    },
    RotateToken {
        target: Option<TokenIx>,
        overlap: i64,
    },
    PromoteToken {
        target: Option<TokenIx>,
        privilege: Privilege,
    },
    ListApplications {
        target: Option<TokenIx>,
    },
    SetApplicationState {
        decision: AppDecision,
    },
    BatchSetApplicationStates {
        decisions: Vec<AppDecision>,
    },
    ReportLeakedSecret,
    GetAccount,
    ListMembers,
    AddMember {
        name: usize,
        role: Privilege,
    },
    UpdateMember {
        member: Option<MemberIx>,
        role: Privilege,
    },
    RemoveMember {
        member: Option<MemberIx>,
    },
    SetAccountPolicy {
        change: PolicyChange,
    },
    /// Opens a WatchTokenEvents stream, kept open while the history goes on.
    WatchTokenEvents,
    /// The operator's `issue-token` for a member (the final checks' fresh Admin token).
    Issue {
        member: MemberIx,
    },
}

/// SplitMix64: a seeded generator small enough to read.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An index by weight.
    fn weighted(&mut self, weights: &[usize]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        weights
            .iter()
            .position(|&w| {
                let hit = roll < w;
                roll = roll.saturating_sub(w);
                hit
            })
            .unwrap_or(0)
    }
}

const PRIVILEGES: [Privilege; 3] = [Privilege::ReadOnly, Privilege::Normal, Privilege::Admin];
const STATES: [AppState; 3] = [AppState::Allow, AppState::Pending, AppState::Deny];

/// The steps every history starts with (shrinkable like the others): account A's Admin adds a
/// Normal and a Read-Only member (each issued a token) and makes a Normal account token; in
/// half the histories it turns `retire_on_reuse` on, and the Normal member opens a stream.
pub fn prologue(rng: &mut Rng) -> Vec<Step> {
    let by = |secret, call| Step {
        who: Presented::Secret(secret),
        app: 0,
        replica: 0,
        call,
    };
    let admin = |call| by(0, call);
    let mut steps = vec![
        admin(Call::AddMember {
            name: 1,
            role: Privilege::Normal,
        }),
        admin(Call::AddMember {
            name: 2,
            role: Privilege::ReadOnly,
        }),
        admin(Call::CreateToken {
            kind: TokenType::Account,
            privilege: Privilege::Normal,
            default_app_state: AppState::Allow,
            expire_days: None,
        }),
    ];
    if rng.chance(50) {
        steps.push(admin(Call::SetAccountPolicy {
            change: PolicyChange::RetireOnReuse(true),
        }));
    }
    if rng.chance(50) {
        // S2: the Normal member's token, issued when it was added.
        steps.push(by(2, Call::WatchTokenEvents));
    }
    steps
}

/// Whether a secret opens its token now (before the app's approval and the owner are judged).
fn works(model: &Model, secret: usize) -> bool {
    let token = &model.tokens[model.secrets[secret].token];
    !token.retired
        && (token.current == secret
            || token
                .previous
                .is_some_and(|p| p.secret == secret && p.end > model.now))
}

/// A caller: mostly a secret that works, of account A (three calls in four) or B.
fn pick_secret(rng: &mut Rng, model: &Model) -> Presented {
    let account = usize::from(rng.chance(25));
    let working: Vec<usize> = (0..model.secrets.len())
        .filter(|&s| works(model, s) && model.tokens[model.secrets[s].token].account == account)
        .collect();
    match rng.weighted(&[70, 16, 7, 4, 3]) {
        0 if !working.is_empty() => Presented::Secret(rng.pick(&working)),
        0 | 1 => Presented::Secret(rng.below(model.secrets.len())),
        2 => Presented::Unknown,
        3 => Presented::Malformed,
        _ => Presented::Nothing,
    }
}

/// The current secret of a token that acts as an Admin (before its application's approval).
fn pick_admin(rng: &mut Rng, model: &Model) -> Option<Presented> {
    let admins: Vec<usize> = (0..model.tokens.len())
        .filter(|&t| model.effective(t) == Privilege::Admin)
        .map(|t| model.tokens[t].current)
        .collect();
    (!admins.is_empty()).then(|| Presented::Secret(rng.pick(&admins)))
}

/// Most often a user token of the account (what PromoteToken takes), preferring one its
/// owner's role caps below its own privilege (where promotion must not raise it).
fn pick_user_token(rng: &mut Rng, model: &Model, account: AccountIx) -> Option<TokenIx> {
    let users: Vec<usize> = (0..model.tokens.len())
        .filter(|&t| model.tokens[t].account == account && model.tokens[t].owner.is_some())
        .collect();
    let capped: Vec<usize> = users
        .iter()
        .copied()
        .filter(|&t| model.effective(t) < model.tokens[t].privilege)
        .collect();
    match rng.below(10) {
        0..=4 if !capped.is_empty() => Some(rng.pick(&capped)),
        0..=7 if !users.is_empty() => Some(rng.pick(&users)),
        _ => pick_token(rng, model, account),
    }
}

/// The application a caller calls as: half the time one its token's approval caps.
fn pick_app(rng: &mut Rng, model: &Model, who: Presented) -> usize {
    let capped = match who {
        Presented::Secret(s) => {
            let apps = &model.tokens[model.secrets[s].token].apps;
            APPS.iter()
                .position(|&a| apps.iter().any(|(n, x)| n == a && x.cap.is_some()))
        }
        _ => None,
    };
    match capped {
        Some(app) if rng.chance(50) => app,
        _ => rng.below(APPS.len()),
    }
}

fn token_of(model: &Model, who: Presented) -> Option<TokenIx> {
    match who {
        Presented::Secret(s) => Some(model.secrets[s].token),
        _ => None,
    }
}

fn account_of(model: &Model, who: Presented) -> AccountIx {
    match who {
        Presented::Secret(s) => model.tokens[model.secrets[s].token].account,
        _ => 0,
    }
}

fn pick_token(rng: &mut Rng, model: &Model, account: AccountIx) -> Option<TokenIx> {
    let mine: Vec<usize> = (0..model.tokens.len())
        .filter(|&t| model.tokens[t].account == account)
        .collect();
    match rng.weighted(&[60, 30, 10]) {
        0 if !mine.is_empty() => Some(rng.pick(&mine)),
        1 => {
            let others: Vec<usize> = (0..model.tokens.len())
                .filter(|&t| model.tokens[t].account != account)
                .collect();
            Some(rng.pick(&others))
        }
        0 => Some(rng.below(model.tokens.len())),
        _ => None,
    }
}

fn pick_member(rng: &mut Rng, model: &Model, account: AccountIx) -> Option<MemberIx> {
    let mine: Vec<usize> = (0..model.members.len())
        .filter(|&m| model.members[m].account == account && !model.members[m].removed)
        .collect();
    match rng.weighted(&[80, 12, 8]) {
        0 if !mine.is_empty() => Some(rng.pick(&mine)),
        0 | 1 => Some(rng.below(model.members.len())),
        _ => None,
    }
}

/// A decision about an application: now and then about the caller's own token and
/// application (where `OWN_APPROVAL` lives).
fn pick_decision(rng: &mut Rng, model: &Model, who: Presented, app: usize) -> AppDecision {
    let state = rng.pick(&STATES);
    let cap = (state == AppState::Allow && rng.chance(60))
        .then(|| rng.pick(&[Privilege::ReadOnly, Privilege::Normal]));
    let own = match who {
        Presented::Secret(s) if rng.chance(30) => Some(model.secrets[s].token),
        _ => None,
    };
    AppDecision {
        token: own.or_else(|| pick_token(rng, model, account_of(model, who))),
        name: APPS[if own.is_some() {
            app
        } else {
            rng.below(APPS.len())
        }]
        .into(),
        state,
        cap,
    }
}

fn pick_expiry(rng: &mut Rng) -> Option<i64> {
    [None, None, Some(30), Some(90)][rng.below(4)]
}

/// A random step, most callers holding a secret that still works.
pub fn generate(rng: &mut Rng, model: &Model) -> Step {
    let weights = [14, 10, 5, 8, 8, 5, 8, 7, 4, 12, 4, 4, 4, 3, 5, 6, 3, 4, 5];
    let kind = rng.weighted(&weights);
    // Admin-only calls (promote, members, policy), and listings (so that page tokens are
    // handed out), are made by Admins more often than not.
    let who = match kind {
        3 | 7 | 14..=17 if rng.chance(60) => pick_admin(rng, model).unwrap_or(Presented::Unknown),
        _ => pick_secret(rng, model),
    };
    let app = pick_app(rng, model, who);
    let account = account_of(model, who);
    // Changes to a token an open stream watches with (update, retire, rotate, promote) are
    // where streams and the other rules meet: a third of them aim there.
    let watched: Vec<TokenIx> = model
        .streams
        .iter()
        .filter(|w| w.ended.is_none())
        .map(|w| model.secrets[w.secret].token)
        .collect();
    let target = match kind {
        4..=7 if !watched.is_empty() && rng.chance(33) => Some(rng.pick(&watched)),
        7 => pick_user_token(rng, model, account),
        _ => pick_token(rng, model, account),
    };
    let capped = match who {
        Presented::Secret(s) => model.tokens[model.secrets[s].token]
            .apps
            .iter()
            .any(|(n, a)| n == APPS[app] && a.cap.is_some()),
        _ => false,
    };
    let call = match kind {
        // A capped caller now and then tries to lift or narrow its own cap.
        _ if capped && rng.chance(25) => Call::SetApplicationState {
            decision: AppDecision {
                token: token_of(model, who),
                name: APPS[app].into(),
                state: AppState::Allow,
                cap: [
                    None,
                    Some(Privilege::ReadOnly),
                    Some(Privilege::Normal),
                    Some(Privilege::Admin),
                ][rng.below(4)],
            },
        },
        0 => Call::Authorize {
            required: rng.pick(&PRIVILEGES),
        },
        1 => Call::CreateToken {
            kind: rng.pick(&[TokenType::User, TokenType::User, TokenType::Account]),
            privilege: rng.pick(&[
                Privilege::Unspecified,
                Privilege::ReadOnly,
                Privilege::Normal,
                Privilege::Admin,
            ]),
            default_app_state: rng.pick(&[
                AppState::Unspecified,
                AppState::Allow,
                AppState::Allow,
                AppState::Deny,
            ]),
            expire_days: pick_expiry(rng),
        },
        2 => Call::GetToken { target },
        3 => Call::ListTokens {
            page_size: rng.pick(&[2, 2, 50]),
            continued: rng.chance(60),
        },
        4 => Call::UpdateToken {
            target,
            change: match rng.below(4) {
                0 => Change::Description(format!("d{}", rng.below(3))),
                1 => Change::Privilege(rng.pick(&PRIVILEGES)),
                2 => Change::DefaultAppState(rng.pick(&STATES)),
                _ => Change::Expiry(pick_expiry(rng)),
            },
        },
        5 => Call::RetireToken { target },
        // Callers rotate their own token often: its streams and rotated-out secrets meet.
        6 => Call::RotateToken {
            target: match token_of(model, who) {
                Some(own) if rng.chance(40) => Some(own),
                _ => target,
            },
            overlap: rng.pick(&[0, HOUR]),
        },
        7 => Call::PromoteToken {
            target,
            privilege: rng.pick(&[
                Privilege::Unspecified,
                Privilege::Unspecified,
                Privilege::Unspecified,
                Privilege::ReadOnly,
                Privilege::Normal,
            ]),
        },
        8 => Call::ListApplications { target },
        9 => Call::SetApplicationState {
            decision: pick_decision(rng, model, who, app),
        },
        10 => {
            let mut decisions = vec![
                pick_decision(rng, model, who, app),
                pick_decision(rng, model, who, app),
            ];
            distinct(&mut decisions);
            Call::BatchSetApplicationStates { decisions }
        }
        11 => Call::ReportLeakedSecret,
        12 => Call::GetAccount,
        13 => Call::ListMembers,
        14 => Call::AddMember {
            name: rng.below(NAMES.len()),
            role: rng.pick(&PRIVILEGES),
        },
        15 => {
            // Half the time a demotion, whose meeting with the member's tokens is the point.
            let member = pick_member(rng, model, account);
            let role = match member.map(|m| model.members[m].role) {
                Some(Privilege::Admin) if rng.chance(50) => Privilege::Normal,
                Some(Privilege::Normal) if rng.chance(50) => Privilege::ReadOnly,
                _ => rng.pick(&PRIVILEGES),
            };
            Call::UpdateMember { member, role }
        }
        16 => Call::RemoveMember {
            member: pick_member(rng, model, account),
        },
        18 if model.streams.iter().filter(|w| w.ended.is_none()).count() < 3 => {
            Call::WatchTokenEvents
        }
        18 => Call::GetAccount,
        _ => Call::SetAccountPolicy {
            change: match rng.below(4) {
                0 | 1 => PolicyChange::RetireOnReuse(rng.chance(80)),
                2 => PolicyChange::RequireExpiry(rng.chance(40)),
                _ => PolicyChange::MaxLifetimeDays(rng.pick(&[None, Some(60)])),
            },
        },
    };
    // A leak report needs no caller: it presents a secret, often a rotated-out one.
    let rotated_out: Vec<usize> = (0..model.secrets.len())
        .filter(|&s| model.tokens[model.secrets[s].token].current != s)
        .collect();
    let who = match call {
        Call::ReportLeakedSecret if !rotated_out.is_empty() && rng.chance(40) => {
            Presented::Secret(rng.pick(&rotated_out))
        }
        Call::ReportLeakedSecret if matches!(who, Presented::Malformed | Presented::Nothing) => {
            Presented::Unknown
        }
        _ => who,
    };
    Step {
        who,
        app,
        replica: rng.below(2),
        call,
    }
}

/// A batch names each (token, application) once: the second of a pair names the other
/// application.
fn distinct(decisions: &mut [AppDecision]) {
    if let [first, second] = decisions
        && (first.token, &first.name) == (second.token, &second.name)
    {
        second.name = APPS
            .iter()
            .find(|&&n| n != first.name)
            .expect("two")
            .to_string();
    }
}

/// The step with its indices brought within what the model holds now (after shrinking dropped
/// the steps that made them).
pub fn resolve(step: &Step, model: &Model) -> Step {
    let token = |t: Option<TokenIx>| t.map(|t| t % model.tokens.len());
    let member = |m: Option<MemberIx>| m.map(|m| m % model.members.len());
    let decision = |d: &AppDecision| AppDecision {
        token: token(d.token),
        ..d.clone()
    };
    let call = match &step.call {
        Call::GetToken { target } => Call::GetToken {
            target: token(*target),
        },
        Call::UpdateToken { target, change } => Call::UpdateToken {
            target: token(*target),
            change: change.clone(),
        },
        Call::RetireToken { target } => Call::RetireToken {
            target: token(*target),
        },
        Call::RotateToken { target, overlap } => Call::RotateToken {
            target: token(*target),
            overlap: *overlap,
        },
        Call::PromoteToken { target, privilege } => Call::PromoteToken {
            target: token(*target),
            privilege: *privilege,
        },
        Call::ListApplications { target } => Call::ListApplications {
            target: token(*target),
        },
        Call::SetApplicationState { decision: d } => Call::SetApplicationState {
            decision: decision(d),
        },
        Call::BatchSetApplicationStates { decisions } => {
            let mut decisions: Vec<AppDecision> = decisions.iter().map(decision).collect();
            distinct(&mut decisions);
            Call::BatchSetApplicationStates { decisions }
        }
        Call::UpdateMember { member: m, role } => Call::UpdateMember {
            member: member(*m),
            role: *role,
        },
        Call::RemoveMember { member: m } => Call::RemoveMember { member: member(*m) },
        Call::Issue { member: m } => Call::Issue {
            member: m % model.members.len(),
        },
        other => other.clone(),
    };
    let who = match step.who {
        Presented::Secret(s) => Presented::Secret(s % model.secrets.len()),
        other => other,
    };
    Step {
        who,
        call,
        ..step.clone()
    }
}

/// What the model says the step must answer; the model changes as the server must.
pub fn apply(model: &mut Model, step: &Step) -> Answer {
    let answer = apply_call(model, step);
    model.judge_streams();
    answer
}

fn apply_call(model: &mut Model, step: &Step) -> Answer {
    let caller = (step.who, APPS[step.app]);
    match &step.call {
        Call::Authorize { required } => model.authorize(step.who, APPS[step.app], *required),
        Call::CreateToken {
            kind,
            privilege,
            default_app_state,
            expire_days,
        } => model.create_token(
            caller,
            *kind,
            *privilege,
            *default_app_state,
            "",
            *expire_days,
        ),
        Call::GetToken { target } => model.get_token(caller, *target),
        Call::ListTokens {
            page_size,
            continued,
        } => model.list_tokens(caller, *page_size, *continued),
        Call::UpdateToken { target, change } => model.update_token(caller, *target, change),
        Call::RetireToken { target } => model.retire_token(caller, *target),
        Call::RotateToken { target, overlap } => model.rotate_token(caller, *target, *overlap),
        Call::PromoteToken { target, privilege } => {
            model.promote_token(caller, *target, *privilege)
        }
        Call::ListApplications { target } => model.list_applications(caller, *target),
        Call::SetApplicationState { decision } => model.set_application_state(caller, decision),
        Call::BatchSetApplicationStates { decisions } => {
            model.batch_set_application_states(caller, decisions)
        }
        Call::ReportLeakedSecret => model.report_leaked_secret(step.who),
        Call::GetAccount => model.get_account(caller),
        Call::ListMembers => model.list_members(caller),
        Call::AddMember { name, role } => {
            let added = model.add_member(caller, NAMES[*name], *role);
            // The new member gets a token as a sign-in front end would give one (issue-token).
            if let Ok(crate::model::View::Member(m, _)) = added {
                model.issue(m);
            }
            added
        }
        Call::UpdateMember { member, role } => model.update_member(caller, *member, *role),
        Call::RemoveMember { member } => model.remove_member(caller, *member),
        Call::SetAccountPolicy { change } => model.set_account_policy(caller, *change),
        Call::WatchTokenEvents => model.watch_token_events(caller),
        Call::Issue { member } => {
            model.issue(*member);
            Ok(crate::model::View::Empty)
        }
    }
}

// ---- printing ------------------------------------------------------------------------------

/// What kind of caller the step has, by the model before it: for the run's tally.
pub fn caller_kind(model: &Model, step: &Step) -> String {
    let s = match step.who {
        _ if matches!(step.call, Call::Issue { .. }) => return "the operator".into(),
        Presented::Secret(s) => s,
        Presented::Unknown => return "a secret of no token".into(),
        Presented::Malformed => return "a malformed secret".into(),
        Presented::Nothing => return "no credentials".into(),
    };
    let t = model.secrets[s].token;
    let token = &model.tokens[t];
    let approval = token
        .apps
        .iter()
        .find(|(n, _)| n == APPS[step.app])
        .map(|(_, a)| *a);
    let state = approval.map_or(token.default_app_state, |a| a.state);
    let kind = if token.current != s && !works(model, s) {
        "a rotated-out secret past its overlap".into()
    } else if token.retired {
        "a retired (or leaked) token".into()
    } else if token.owner.is_some_and(|m| model.members[m].removed) {
        "a removed member's token".into()
    } else if state != AppState::Allow {
        "an application not allowed".into()
    } else {
        let who = match token.owner {
            Some(_) => format!("{:?} user", model.effective(t)),
            None => format!("{:?} account token", token.privilege),
        };
        let cap = approval.and_then(|a| a.cap);
        let cap = cap
            .map(|c| format!(", its application capped at {c:?}"))
            .unwrap_or_default();
        let rotated = if token.current != s {
            ", with a rotated-out secret within its overlap"
        } else {
            ""
        };
        format!("{who}{cap}{rotated}")
    };
    let other = match &step.call {
        Call::GetToken { target: Some(t) }
        | Call::UpdateToken {
            target: Some(t), ..
        }
        | Call::RetireToken { target: Some(t) }
        | Call::RotateToken {
            target: Some(t), ..
        }
        | Call::PromoteToken {
            target: Some(t), ..
        }
        | Call::ListApplications { target: Some(t) } => model.tokens[*t].account != token.account,
        Call::SetApplicationState { decision } => decision
            .token
            .is_some_and(|t| model.tokens[t].account != token.account),
        Call::UpdateMember {
            member: Some(m), ..
        }
        | Call::RemoveMember { member: Some(m) } => model.members[*m].account != token.account,
        Call::ListTokens {
            continued: true, ..
        } => model.page_token.is_some_and(|p| p.account != token.account),
        _ => false,
    };
    if other {
        format!("{kind}, at another account")
    } else {
        kind
    }
}

fn account_name(a: AccountIx) -> char {
    (b'A' + a as u8) as char
}

pub fn member_text(model: &Model, m: MemberIx) -> String {
    let member = &model.members[m];
    let name = member.name.split('@').next().unwrap_or_default();
    let gone = if member.removed { ", removed" } else { "" };
    format!(
        "M{m} ({name} of {}, {:?}{gone})",
        account_name(member.account),
        member.role
    )
}

pub fn token_text(model: &Model, t: TokenIx) -> String {
    let token = &model.tokens[t];
    let whose = match token.owner {
        Some(m) => format!(
            "{}'s user token",
            model.members[m].name.split('@').next().unwrap_or_default()
        ),
        None => "account token".into(),
    };
    let mut flags = String::new();
    if token.retired {
        flags.push_str(", retired");
    }
    if token.promoted {
        flags.push_str(", promoted");
    }
    format!(
        "T{t} ({whose} of {}, {:?}{flags})",
        account_name(token.account),
        token.privilege
    )
}

fn who_text(model: &Model, who: Presented) -> String {
    match who {
        Presented::Secret(s) => {
            let t = model.secrets[s].token;
            let token = &model.tokens[t];
            let which = if token.current == s {
                "current secret"
            } else if token
                .previous
                .is_some_and(|p| p.secret == s && p.end > model.now)
            {
                "rotated-out secret within its overlap"
            } else {
                "rotated-out secret past its overlap"
            };
            format!("S{s} ({which} of {})", token_text(model, t))
        }
        Presented::Unknown => "a UUID-shaped secret of no token".into(),
        Presented::Malformed => "a secret that is not UUID-shaped".into(),
        Presented::Nothing => "no credentials".into(),
    }
}

fn target_text(model: &Model, t: Option<TokenIx>) -> String {
    t.map_or("a token id that does not exist".into(), |t| {
        token_text(model, t)
    })
}

fn decision_text(model: &Model, d: &AppDecision) -> String {
    let cap = d
        .cap
        .map(|c| format!(" capped at {c:?}"))
        .unwrap_or_default();
    format!(
        "{} on {}: {:?}{cap}",
        d.name,
        target_text(model, d.token),
        d.state
    )
}

/// The step as a sentence, read against the model as it stood before the step.
pub fn describe(model: &Model, step: &Step) -> String {
    let call = match &step.call {
        Call::Authorize { required } => format!("Authorize(required {required:?})"),
        Call::CreateToken {
            kind,
            privilege,
            default_app_state,
            expire_days,
        } => format!(
            "CreateToken({kind:?}, {privilege:?}, default {default_app_state:?}, expires in {expire_days:?} days)"
        ),
        Call::GetToken { target } => format!("GetToken({})", target_text(model, *target)),
        Call::ListTokens {
            page_size,
            continued,
        } => format!(
            "ListTokens(page_size {page_size}, page_token: {})",
            if *continued {
                "the last one handed out"
            } else {
                "none"
            }
        ),
        Call::UpdateToken { target, change } => {
            format!("UpdateToken({}, {change:?})", target_text(model, *target))
        }
        Call::RetireToken { target } => format!("RetireToken({})", target_text(model, *target)),
        Call::RotateToken { target, overlap } => format!(
            "RotateToken({}, overlap {overlap} s)",
            target_text(model, *target)
        ),
        Call::PromoteToken { target, privilege } => format!(
            "PromoteToken({}, privilege {privilege:?})",
            target_text(model, *target)
        ),
        Call::ListApplications { target } => {
            format!("ListApplications({})", target_text(model, *target))
        }
        Call::SetApplicationState { decision } => {
            format!("SetApplicationState({})", decision_text(model, decision))
        }
        Call::BatchSetApplicationStates { decisions } => {
            let all: Vec<String> = decisions.iter().map(|d| decision_text(model, d)).collect();
            format!("BatchSetApplicationStates([{}])", all.join("; "))
        }
        Call::ReportLeakedSecret => {
            return format!(
                "[replica {}] anyone reports {} leaked",
                step.replica,
                who_text(model, step.who)
            );
        }
        Call::GetAccount => "GetAccount".into(),
        Call::WatchTokenEvents => format!("WatchTokenEvents (stream W{})", model.streams.len()),
        Call::ListMembers => "ListMembers".into(),
        Call::AddMember { name, role } => format!("AddMember({}, {role:?})", NAMES[*name]),
        Call::UpdateMember { member, role } => format!(
            "UpdateMember({}, {role:?})",
            member.map_or("a member that does not exist".into(), |m| member_text(
                model, m
            ))
        ),
        Call::RemoveMember { member } => format!(
            "RemoveMember({})",
            member.map_or("a member that does not exist".into(), |m| member_text(
                model, m
            ))
        ),
        Call::SetAccountPolicy { change } => format!("SetAccountPolicy({change:?})"),
        Call::Issue { member } => {
            return format!(
                "the operator issues {} a token (issue-token)",
                member_text(model, *member)
            );
        }
    };
    format!(
        "[replica {}] {} as {} calls {call}",
        step.replica,
        who_text(model, step.who),
        APPS[step.app]
    )
}
