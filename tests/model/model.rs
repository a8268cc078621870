//! The reference model: the rules of docs/permissions.md, docs/errors.md and the protos, stated a
//! second time in plain Rust, sharing nothing with `src` but the generated protobuf enums. For
//! every call it says what the server must answer; `history.rs` holds the real server to it.
//!
//! Read it top to bottom: the state, how a presented secret is decided (Authorize, and every
//! management caller), who sees which token, then one function per RPC in the order the rules
//! are checked. Time is an explicit `now` (seconds); the histories do not step it yet.
use std::cmp::min;

use api_tokens::grpc::pb::{AppState, Decision, Privilege, TokenType};
use tonic::Code;

pub type AccountIx = usize;
pub type MemberIx = usize;
pub type TokenIx = usize;
pub type SecretIx = usize;

pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;

/// Everything the rules read.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub now: i64,
    pub accounts: Vec<Account>,
    pub members: Vec<Member>,
    pub tokens: Vec<Token>,
    /// Every secret ever issued, current or rotated out.
    pub secrets: Vec<Secret>,
    /// The last page token ListTokens handed out, and what it is bound to.
    pub page_token: Option<PageToken>,
    /// WatchTokenEvents streams opened, in order.
    pub streams: Vec<Stream>,
}

/// An open (or ended) WatchTokenEvents stream: the credentials it was opened with, and the
/// refusal it ended with.
#[derive(Clone, Debug)]
pub struct Stream {
    pub secret: SecretIx,
    pub app: String,
    pub ended: Option<Refusal>,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub policy: Policy,
}

/// The part of the account policy the histories set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub retire_on_reuse: bool,
    pub require_expiry: bool,
    pub max_lifetime_days: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub account: AccountIx,
    pub name: String,
    pub role: Privilege,
    pub removed: bool,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub account: AccountIx,
    /// The owning member of a user token; `None` for an account token.
    pub owner: Option<MemberIx>,
    pub creator: Option<MemberIx>,
    pub privilege: Privilege,
    pub default_app_state: AppState,
    pub description: String,
    pub retired: bool,
    pub promoted: bool,
    pub rotated: bool,
    pub expire_time: Option<i64>,
    /// Application names in the order they were first recorded.
    pub apps: Vec<(String, Approval)>,
    pub current: SecretIx,
    /// The secret rotated out last, while its overlap runs.
    pub previous: Option<Previous>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Previous {
    pub secret: SecretIx,
    pub end: i64,
}

#[derive(Clone, Debug)]
pub struct Secret {
    pub token: TokenIx,
    /// Its first use after its overlap has been recorded (reuse).
    pub reuse_recorded: bool,
}

/// An application's state on a token, with the Allow's privilege cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approval {
    pub state: AppState,
    pub cap: Option<Privilege>,
}

/// What ListTokens' page token is bound to: the account, and where the page ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageToken {
    pub account: AccountIx,
    pub after: TokenIx,
}

/// What a caller presents: a secret it holds, a UUID-shaped secret of no token, something not
/// UUID-shaped, or no credentials at all; and the application name it calls as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    Secret(SecretIx),
    Unknown,
    Malformed,
    Nothing,
}

/// A management caller that passed the Authorize decision: it acts with exactly its privilege.
#[derive(Clone, Debug)]
pub struct Caller {
    pub account: AccountIx,
    pub member: Option<MemberIx>,
    pub token: TokenIx,
    pub app: String,
    pub privilege: Privilege,
}

/// A refusal: its gRPC code and ErrorInfo reason ("" for NOT_FOUND; for INVALID_ARGUMENT the
/// field the BadRequest names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub reason: &'static str,
}

pub const fn refuse(code: Code, reason: &'static str) -> Refusal {
    Refusal { code, reason }
}

const NOT_FOUND: Refusal = refuse(Code::NotFound, "");
const READ_ONLY_CALLER: Refusal = refuse(Code::PermissionDenied, "READ_ONLY_CALLER");
const ADMIN_REQUIRED: Refusal = refuse(Code::PermissionDenied, "ADMIN_REQUIRED");
const ABOVE_CALLER: Refusal = refuse(Code::PermissionDenied, "PRIVILEGE_ABOVE_CALLER");
const TOKEN_RETIRED: Refusal = refuse(Code::FailedPrecondition, "TOKEN_RETIRED");

/// A token as the server must show it (Token message), in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenView {
    pub token: TokenIx,
    pub kind: TokenType,
    pub owner: Option<MemberIx>,
    pub creator: Option<MemberIx>,
    pub privilege: Privilege,
    pub effective: Privilege,
    pub default_app_state: AppState,
    pub description: String,
    pub retired: bool,
    pub promoted: bool,
    pub rotated: bool,
    pub expires: bool,
    /// `previous_secret` is set: a rotated-out secret still works.
    pub overlap_running: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppView {
    pub token: TokenIx,
    pub name: String,
    pub approval: Approval,
}

/// One decision of a batch, answered alone.
pub type DecisionResult = Result<(AppView, bool), Refusal>;

/// Every answer the server gives, in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    Token(TokenView),
    Tokens(Vec<TokenView>, bool),
    App(AppView),
    Apps(Vec<AppView>),
    Batch(Vec<DecisionResult>),
    Member(MemberIx, Privilege),
    Members(Vec<(MemberIx, Privilege)>),
    Policy(Policy),
    Account {
        member: Option<MemberIx>,
        token: TokenIx,
        privilege: Privilege,
        policy: Policy,
    },
    Authorized(Decision, Option<(TokenIx, Privilege)>),
    Empty,
}

pub type Answer = Result<View, Refusal>;

/// A privilege cap, or none.
fn capped(privilege: Privilege, cap: Option<Privilege>) -> Privilege {
    cap.map_or(privilege, |cap| min(privilege, cap))
}

impl Model {
    // ---- set-up by the operator (bootstrap, issue-token): outside the API's rules -------------

    /// `bootstrap`: an account, its Admin, and the Admin's token (Admin, default Allow).
    pub fn bootstrap(&mut self, admin: &str) -> AccountIx {
        self.accounts.push(Account {
            policy: Policy::default(),
        });
        let account = self.accounts.len() - 1;
        let member = self.add_member_row(account, admin, Privilege::Admin);
        let t = self.issue(member);
        self.tokens[t].description = "created by api-tokens bootstrap".into();
        account
    }

    /// `issue-token`: a user token of the member's role, default app state Allow, made for the
    /// member as if they had made it (its creator is the member).
    pub fn issue(&mut self, member: MemberIx) -> TokenIx {
        let m = &self.members[member];
        let (account, role) = (m.account, m.role);
        let description = "issued by api-tokens issue-token";
        self.new_token(
            account,
            Some(member),
            Some(member),
            role,
            AppState::Allow,
            description,
        )
    }

    fn add_member_row(&mut self, account: AccountIx, name: &str, role: Privilege) -> MemberIx {
        self.members.push(Member {
            account,
            name: name.into(),
            role,
            removed: false,
        });
        self.members.len() - 1
    }

    fn new_token(
        &mut self,
        account: AccountIx,
        owner: Option<MemberIx>,
        creator: Option<MemberIx>,
        privilege: Privilege,
        default_app_state: AppState,
        description: &str,
    ) -> TokenIx {
        let t = self.tokens.len();
        self.secrets.push(Secret {
            token: t,
            reuse_recorded: false,
        });
        self.tokens.push(Token {
            account,
            owner,
            creator,
            privilege,
            default_app_state,
            description: description.into(),
            retired: false,
            promoted: false,
            rotated: false,
            expire_time: None,
            apps: Vec::new(),
            current: self.secrets.len() - 1,
            previous: None,
        });
        t
    }

    // ---- the decision: Authorize, and every management caller --------------------------------

    /// The token a secret opens now: its current secret, or one rotated out within its overlap
    /// (a retired token's too: it is then refused as retired). A rotated-out secret past its
    /// overlap is refused as unknown; its first such use is recorded, and with
    /// `retire_on_reuse` retires the token (rule 9). Nothing is recorded on a retired token.
    fn token_of(&mut self, secret: SecretIx) -> Result<TokenIx, Decision> {
        let t = self.secrets[secret].token;
        let token = &self.tokens[t];
        let in_overlap = token
            .previous
            .is_some_and(|p| p.secret == secret && p.end > self.now);
        if token.current == secret || in_overlap {
            return Ok(t);
        }
        if !token.retired && !self.secrets[secret].reuse_recorded {
            self.secrets[secret].reuse_recorded = true;
            if self.accounts[token.account].policy.retire_on_reuse {
                self.retire(t);
            }
        }
        Err(Decision::UnknownToken)
    }

    /// The privilege a token acts with before any approval's cap: a user token's is capped by
    /// its owner's current role; none when retired or its owner was removed.
    pub fn effective(&self, t: TokenIx) -> Privilege {
        let token = &self.tokens[t];
        match token.owner {
            _ if token.retired => Privilege::Unspecified,
            Some(m) if self.members[m].removed => Privilege::Unspecified,
            Some(m) => min(token.privilege, self.members[m].role),
            None => token.privilege,
        }
    }

    /// The application's approval on the token, recording its first use with the token's
    /// default app state.
    fn record_use(&mut self, t: TokenIx, app: &str) -> Approval {
        let token = &mut self.tokens[t];
        if let Some((_, approval)) = token.apps.iter().find(|(name, _)| name == app) {
            return *approval;
        }
        let approval = Approval {
            state: token.default_app_state,
            cap: None,
        };
        token.apps.push((app.into(), approval));
        approval
    }

    /// Authorize's decision for a secret presented by `app`, and the privilege it acts with.
    pub fn decide(
        &mut self,
        secret: SecretIx,
        app: &str,
        required: Privilege,
    ) -> Result<(TokenIx, Privilege), Decision> {
        let t = self.token_of(secret)?;
        let token = &self.tokens[t];
        if token.retired {
            return Err(Decision::Retired);
        }
        if token.expire_time.is_some_and(|end| end <= self.now) {
            return Err(Decision::Expired);
        }
        if token.owner.is_some_and(|m| self.members[m].removed) {
            return Err(Decision::OwnerRemoved);
        }
        let approval = self.record_use(t, app);
        match approval.state {
            AppState::Allow => {}
            AppState::Deny => return Err(Decision::Denied),
            _ => return Err(Decision::Pending),
        }
        let privilege = capped(self.effective(t), approval.cap);
        if privilege < required {
            return Err(Decision::InsufficientPrivilege);
        }
        Ok((t, privilege))
    }

    /// AuthorizeService.Authorize. An empty or malformed secret is a malformed request.
    pub fn authorize(&mut self, presented: Presented, app: &str, required: Privilege) -> Answer {
        let secret = match presented {
            Presented::Secret(secret) => secret,
            Presented::Unknown => return Ok(View::Authorized(Decision::UnknownToken, None)),
            Presented::Malformed | Presented::Nothing => {
                return Err(refuse(Code::InvalidArgument, "token"));
            }
        };
        Ok(match self.decide(secret, app, required) {
            Ok((t, privilege)) => View::Authorized(Decision::Allow, Some((t, privilege))),
            Err(decision) => View::Authorized(decision, None),
        })
    }

    /// A management call's caller: the same decision as Authorize (needing Read-Only), its
    /// refusals as UNAUTHENTICATED or PERMISSION_DENIED with the reasons of docs/errors.md.
    pub fn authenticate(&mut self, presented: Presented, app: &str) -> Result<Caller, Refusal> {
        let unauthenticated = |reason| refuse(Code::Unauthenticated, reason);
        let secret = match presented {
            Presented::Secret(secret) => secret,
            Presented::Unknown => return Err(unauthenticated("UNKNOWN_TOKEN")),
            Presented::Malformed => return Err(unauthenticated("MALFORMED_TOKEN")),
            Presented::Nothing => return Err(unauthenticated("MISSING_CREDENTIALS")),
        };
        match self.decide(secret, app, Privilege::ReadOnly) {
            Ok((t, privilege)) => Ok(Caller {
                account: self.tokens[t].account,
                member: self.tokens[t].owner,
                token: t,
                app: app.into(),
                privilege,
            }),
            Err(Decision::Pending) => Err(unauthenticated("APP_PENDING")),
            Err(Decision::Denied) => Err(refuse(Code::PermissionDenied, "APP_DENIED")),
            Err(Decision::Retired) => Err(unauthenticated("TOKEN_RETIRED")),
            Err(Decision::Expired) => Err(unauthenticated("TOKEN_EXPIRED")),
            Err(Decision::OwnerRemoved) => Err(unauthenticated("OWNER_REMOVED")),
            Err(_) => Err(unauthenticated("UNKNOWN_TOKEN")),
        }
    }

    // ---- who sees what (rule 4) -----------------------------------------------------------

    /// An Admin sees every token of its account; anyone else only its own user tokens.
    fn sees(&self, caller: &Caller, t: TokenIx) -> bool {
        let token = &self.tokens[t];
        token.account == caller.account
            && (caller.privilege == Privilege::Admin
                || (token.owner.is_some() && token.owner == caller.member))
    }

    /// The target token if the caller may see it; NOT_FOUND otherwise, as for no token at all.
    fn visible(&self, caller: &Caller, target: Option<TokenIx>) -> Result<TokenIx, Refusal> {
        target.filter(|&t| self.sees(caller, t)).ok_or(NOT_FOUND)
    }

    /// The current member, in the caller's account, an Admin may act on.
    fn member_of(&self, caller: &Caller, target: Option<MemberIx>) -> Result<MemberIx, Refusal> {
        target
            .filter(|&m| self.members[m].account == caller.account && !self.members[m].removed)
            .ok_or(NOT_FOUND)
    }

    pub fn token_view(&self, t: TokenIx) -> TokenView {
        let token = &self.tokens[t];
        TokenView {
            token: t,
            kind: match token.owner {
                Some(_) => TokenType::User,
                None => TokenType::Account,
            },
            owner: token.owner,
            creator: token.creator,
            privilege: token.privilege,
            effective: self.effective(t),
            default_app_state: token.default_app_state,
            description: token.description.clone(),
            retired: token.retired,
            promoted: token.promoted,
            rotated: token.rotated,
            expires: token.expire_time.is_some(),
            overlap_running: !token.retired && token.previous.is_some_and(|p| p.end > self.now),
        }
    }

    fn app_view(&self, t: TokenIx, name: &str) -> Option<AppView> {
        let (name, approval) = self.tokens[t].apps.iter().find(|(n, _)| n == name)?;
        Some(AppView {
            token: t,
            name: name.clone(),
            approval: *approval,
        })
    }

    fn retire(&mut self, t: TokenIx) {
        self.tokens[t].retired = true;
    }

    // ---- rules 1 and 2, and the account policy on expiries (rule 8) -------------------------

    fn writer(&mut self, presented: Presented, app: &str) -> Result<Caller, Refusal> {
        let caller = self.authenticate(presented, app)?;
        if caller.privilege == Privilege::ReadOnly {
            return Err(READ_ONLY_CALLER);
        }
        Ok(caller)
    }

    fn admin(&mut self, presented: Presented, app: &str) -> Result<Caller, Refusal> {
        let caller = self.writer(presented, app)?;
        if caller.privilege != Privilege::Admin {
            return Err(ADMIN_REQUIRED);
        }
        Ok(caller)
    }

    /// An expiry `days` from now (`None`: none) under the account's policy.
    fn judge_expiry(&self, account: AccountIx, days: Option<i64>) -> Result<Option<i64>, Refusal> {
        let policy = self.accounts[account].policy;
        match days {
            Some(days) if policy.max_lifetime_days.is_some_and(|max| days > max) => {
                Err(refuse(Code::FailedPrecondition, "LIFETIME_ABOVE_POLICY"))
            }
            None if policy.require_expiry || policy.max_lifetime_days.is_some() => {
                Err(refuse(Code::FailedPrecondition, "EXPIRY_REQUIRED"))
            }
            _ => Ok(days.map(|days| self.now + days * DAY)),
        }
    }

    /// A target that may still change: not retired (rule 6), not expired (rule 7).
    fn changeable(&self, t: TokenIx) -> Result<(), Refusal> {
        let token = &self.tokens[t];
        if token.retired {
            return Err(TOKEN_RETIRED);
        }
        if token.expire_time.is_some_and(|end| end <= self.now) {
            return Err(refuse(Code::FailedPrecondition, "TOKEN_EXPIRED"));
        }
        Ok(())
    }

    // ---- TokenService --------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn create_token(
        &mut self,
        (presented, app): (Presented, &str),
        kind: TokenType,
        privilege: Privilege,
        default_app_state: AppState,
        description: &str,
        expire_days: Option<i64>,
    ) -> Answer {
        // What kind of token the caller may make (rules 3 and 5) is judged before how much
        // privilege it may give it (rule 2).
        let caller = self.writer(presented, app)?;
        let owner = match kind {
            TokenType::Account if caller.privilege != Privilege::Admin => {
                return Err(ADMIN_REQUIRED);
            }
            TokenType::Account => None,
            _ => Some(
                caller
                    .member
                    .ok_or(refuse(Code::PermissionDenied, "NO_USER_TO_OWN_TOKEN"))?,
            ),
        };
        let privilege = match privilege {
            Privilege::Unspecified => Privilege::ReadOnly,
            asked => asked,
        };
        if privilege > caller.privilege {
            return Err(ABOVE_CALLER);
        }
        let expire_time = self.judge_expiry(caller.account, expire_days)?;
        let default_app_state = match default_app_state {
            AppState::Unspecified => AppState::Pending,
            state => state,
        };
        let t = self.new_token(
            caller.account,
            owner,
            caller.member,
            privilege,
            default_app_state,
            description,
        );
        self.tokens[t].expire_time = expire_time;
        Ok(View::Token(self.token_view(t)))
    }

    pub fn get_token(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<TokenIx>,
    ) -> Answer {
        let caller = self.authenticate(presented, app)?;
        Ok(View::Token(self.token_view(self.visible(&caller, target)?)))
    }

    /// One page of the tokens the caller sees, oldest first; `continued`: after the last page
    /// token handed out, which must be this account's (a page token is bound to its account
    /// and listing: INVALID_ARGUMENT naming `page_token` otherwise).
    pub fn list_tokens(
        &mut self,
        (presented, app): (Presented, &str),
        page_size: usize,
        continued: bool,
    ) -> Answer {
        let caller = self.authenticate(presented, app)?;
        let after = match (continued, self.page_token) {
            (false, _) | (true, None) => None,
            (true, Some(page)) if page.account == caller.account => Some(page.after),
            (true, Some(_)) => return Err(refuse(Code::InvalidArgument, "page_token")),
        };
        let seen: Vec<TokenIx> = (0..self.tokens.len())
            .filter(|&t| self.sees(&caller, t) && after.is_none_or(|after| t > after))
            .collect();
        let page = &seen[..seen.len().min(page_size)];
        let more = seen.len() > page.len();
        if let (true, Some(&last)) = (more, page.last()) {
            self.page_token = Some(PageToken {
                account: caller.account,
                after: last,
            });
        }
        let views = page.iter().map(|&t| self.token_view(t)).collect();
        Ok(View::Tokens(views, more))
    }

    pub fn update_token(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<TokenIx>,
        change: &Change,
    ) -> Answer {
        let caller = self.writer(presented, app)?;
        if let Change::Privilege(privilege) = *change
            && privilege > caller.privilege
        {
            return Err(ABOVE_CALLER);
        }
        let t = self.visible(&caller, target)?;
        self.changeable(t)?;
        let account = self.tokens[t].account;
        match change {
            Change::Description(text) => self.tokens[t].description = text.clone(),
            Change::Privilege(privilege) => self.tokens[t].privilege = *privilege,
            Change::DefaultAppState(state) => self.tokens[t].default_app_state = *state,
            Change::Expiry(days) => {
                self.tokens[t].expire_time = self.judge_expiry(account, *days)?;
            }
        }
        Ok(View::Token(self.token_view(t)))
    }

    /// Retire is final; retiring a retired token changes nothing and answers it.
    pub fn retire_token(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<TokenIx>,
    ) -> Answer {
        let caller = self.writer(presented, app)?;
        let t = self.visible(&caller, target)?;
        self.retire(t);
        Ok(View::Token(self.token_view(t)))
    }

    /// A new secret; the old one works for the overlap (0: not at all). At most two work at
    /// once: the secret rotated out before ends now.
    pub fn rotate_token(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<TokenIx>,
        overlap: i64,
    ) -> Answer {
        let caller = self.writer(presented, app)?;
        let t = self.visible(&caller, target)?;
        self.changeable(t)?;
        self.secrets.push(Secret {
            token: t,
            reuse_recorded: false,
        });
        let token = &mut self.tokens[t];
        let old = std::mem::replace(&mut token.current, self.secrets.len() - 1);
        token.previous = (overlap > 0).then_some(Previous {
            secret: old,
            end: self.now + overlap,
        });
        token.rotated = true;
        Ok(View::Token(self.token_view(t)))
    }

    /// User → Account, Admin only; never raises privilege: the lower of the token's and its
    /// owner's role now (Read-Only if the owner was removed), unless the Admin names one.
    pub fn promote_token(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<TokenIx>,
        privilege: Privilege,
    ) -> Answer {
        let caller = self.admin(presented, app)?;
        let t = self.visible(&caller, target)?;
        self.changeable(t)?;
        let Some(owner) = self.tokens[t].owner else {
            return Err(refuse(Code::FailedPrecondition, "ALREADY_ACCOUNT_TOKEN"));
        };
        let kept = match self.members[owner].removed {
            true => Privilege::ReadOnly,
            false => min(self.tokens[t].privilege, self.members[owner].role),
        };
        let token = &mut self.tokens[t];
        token.privilege = match privilege {
            Privilege::Unspecified => kept,
            named => named,
        };
        token.owner = None;
        token.promoted = true;
        Ok(View::Token(self.token_view(t)))
    }

    pub fn list_applications(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<TokenIx>,
    ) -> Answer {
        let caller = self.authenticate(presented, app)?;
        let t = self.visible(&caller, target)?;
        let names: Vec<String> = self.tokens[t].apps.iter().map(|(n, _)| n.clone()).collect();
        Ok(View::Apps(
            names.iter().filter_map(|n| self.app_view(t, n)).collect(),
        ))
    }

    /// One decision, as SetApplicationState judges it for a caller that passed rule 1. On its
    /// own token and application a caller may deny, set Pending, or allow with a cap no higher
    /// than its approval's now (`OWN_APPROVAL`).
    fn decide_app(&mut self, caller: &Caller, decision: &AppDecision) -> DecisionResult {
        let t = self.visible(caller, decision.token)?;
        self.changeable(t)?;
        let before = self.app_view(t, &decision.name).map(|v| v.approval);
        let approval = Approval {
            state: decision.state,
            cap: decision.cap.filter(|_| decision.state == AppState::Allow),
        };
        let own = t == caller.token && decision.name == caller.app;
        if let (true, AppState::Allow, Some(Approval { cap: Some(now), .. })) =
            (own, approval.state, before)
            && approval.cap.is_none_or(|cap| cap > now)
        {
            return Err(refuse(Code::PermissionDenied, "OWN_APPROVAL"));
        }
        let apps = &mut self.tokens[t].apps;
        match apps.iter_mut().find(|(n, _)| *n == decision.name) {
            Some((_, stored)) => *stored = approval,
            None => apps.push((decision.name.clone(), approval)),
        }
        let view = self.app_view(t, &decision.name).expect("just set");
        Ok((view, before != Some(approval)))
    }

    pub fn set_application_state(
        &mut self,
        (presented, app): (Presented, &str),
        decision: &AppDecision,
    ) -> Answer {
        let caller = self.writer(presented, app)?;
        let (view, _) = self.decide_app(&caller, decision)?;
        Ok(View::App(view))
    }

    /// Each decision judged as SetApplicationState would judge it, by the caller as it stood
    /// when the call began; a refused one writes nothing and leaves the others alone.
    pub fn batch_set_application_states(
        &mut self,
        (presented, app): (Presented, &str),
        decisions: &[AppDecision],
    ) -> Answer {
        let caller = self.writer(presented, app)?;
        let results = decisions
            .iter()
            .map(|d| self.decide_app(&caller, d))
            .collect();
        Ok(View::Batch(results))
    }

    /// Needs no credentials. Every secret that still works is found (the current one, or one
    /// rotated out within its overlap) and its token retired; any other secret changes nothing.
    pub fn report_leaked_secret(&mut self, presented: Presented) -> Answer {
        if let Presented::Secret(secret) = presented {
            let t = self.secrets[secret].token;
            let token = &self.tokens[t];
            let works = token.current == secret
                || token
                    .previous
                    .is_some_and(|p| p.secret == secret && p.end > self.now);
            if works && !token.retired {
                self.retire(t);
            }
        }
        Ok(View::Empty)
    }

    /// WatchTokenEvents: its caller is judged as any call's; the stream stays open until a new
    /// call with the same credentials would be refused.
    pub fn watch_token_events(&mut self, (presented, app): (Presented, &str)) -> Answer {
        self.authenticate(presented, app)?;
        if let Presented::Secret(secret) = presented {
            self.streams.push(Stream {
                secret,
                app: app.into(),
                ended: None,
            });
        }
        Ok(View::Empty)
    }

    /// Every open stream judged again after a change, as a new call with its credentials would
    /// be; an open stream that would be refused ends with that refusal. The server's own
    /// re-check records nothing: no first use, no reuse.
    pub fn judge_streams(&mut self) {
        for i in 0..self.streams.len() {
            let stream = &self.streams[i];
            if stream.ended.is_some() {
                continue;
            }
            let (secret, app) = (stream.secret, stream.app.clone());
            let judged = self.clone().authenticate(Presented::Secret(secret), &app);
            self.streams[i].ended = judged.err();
        }
    }

    // ---- AccountService --------------------------------------------------------------------

    pub fn get_account(&mut self, (presented, app): (Presented, &str)) -> Answer {
        let caller = self.authenticate(presented, app)?;
        Ok(View::Account {
            member: caller.member,
            token: caller.token,
            privilege: caller.privilege,
            policy: self.accounts[caller.account].policy,
        })
    }

    pub fn list_members(&mut self, (presented, app): (Presented, &str)) -> Answer {
        let caller = self.authenticate(presented, app)?;
        let current = (0..self.members.len())
            .filter(|&m| self.members[m].account == caller.account && !self.members[m].removed)
            .map(|m| (m, self.members[m].role))
            .collect();
        Ok(View::Members(current))
    }

    /// A user name is unique among the account's current members; a removed member's name may
    /// be added again, as a new member.
    pub fn add_member(
        &mut self,
        (presented, app): (Presented, &str),
        name: &str,
        role: Privilege,
    ) -> Answer {
        let caller = self.admin(presented, app)?;
        let taken = self
            .members
            .iter()
            .any(|m| m.account == caller.account && !m.removed && m.name == name);
        if taken {
            return Err(refuse(Code::AlreadyExists, "MEMBER_EXISTS"));
        }
        let m = self.add_member_row(caller.account, name, role);
        Ok(View::Member(m, role))
    }

    /// Whether the member is the account's only Admin (rule 10).
    fn last_admin(&self, m: MemberIx) -> bool {
        let account = self.members[m].account;
        let admins = self
            .members
            .iter()
            .filter(|o| o.account == account && !o.removed && o.role == Privilege::Admin);
        self.members[m].role == Privilege::Admin && admins.count() == 1
    }

    pub fn update_member(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<MemberIx>,
        role: Privilege,
    ) -> Answer {
        let caller = self.admin(presented, app)?;
        let m = self.member_of(&caller, target)?;
        if role != Privilege::Admin && self.last_admin(m) {
            return Err(refuse(Code::FailedPrecondition, "LAST_ADMIN"));
        }
        self.members[m].role = role;
        Ok(View::Member(m, role))
    }

    /// Their user tokens stop working at once and for good; account tokens, promoted ones
    /// included, keep working.
    pub fn remove_member(
        &mut self,
        (presented, app): (Presented, &str),
        target: Option<MemberIx>,
    ) -> Answer {
        let caller = self.admin(presented, app)?;
        let m = self.member_of(&caller, target)?;
        if self.last_admin(m) {
            return Err(refuse(Code::FailedPrecondition, "LAST_ADMIN"));
        }
        self.members[m].removed = true;
        Ok(View::Empty)
    }

    /// Admin only; applies to expiries set from then on.
    pub fn set_account_policy(
        &mut self,
        (presented, app): (Presented, &str),
        change: PolicyChange,
    ) -> Answer {
        let caller = self.admin(presented, app)?;
        let policy = &mut self.accounts[caller.account].policy;
        match change {
            PolicyChange::RetireOnReuse(on) => policy.retire_on_reuse = on,
            PolicyChange::RequireExpiry(on) => policy.require_expiry = on,
            PolicyChange::MaxLifetimeDays(days) => policy.max_lifetime_days = days,
        }
        Ok(View::Policy(*policy))
    }
}

/// The one field an UpdateToken changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Description(String),
    Privilege(Privilege),
    DefaultAppState(AppState),
    /// Days from now; `None` removes the expiry.
    Expiry(Option<i64>),
}

/// One decision about an application (`token`: `None` for no token at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDecision {
    pub token: Option<TokenIx>,
    pub name: String,
    pub state: AppState,
    pub cap: Option<Privilege>,
}

/// The one field a SetAccountPolicy sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    RetireOnReuse(bool),
    RequireExpiry(bool),
    MaxLifetimeDays(Option<i64>),
}
