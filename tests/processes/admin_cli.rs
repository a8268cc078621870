//! The admin command line as an operator runs it: the real binary against a spawned server,
//! authenticated by the bootstrap token in API_TOKENS_TOKEN, in table and JSON output.

use std::net::SocketAddr;

use crate::common::{Backend, TestApp, spawn_app};
use serde_json::Value;
use tokio::process::Command;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `api-tokens ARGS` against the server at `server` with `secret` in the environment, and nothing
/// else of the caller's environment that the admin commands read.
pub(super) fn command(server: SocketAddr, secret: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_api-tokens"));
    command
        .args(args)
        .env("API_TOKENS_SERVER", format!("http://{server}"))
        .env_remove("API_TOKENS_TOKEN")
        .env_remove("API_TOKENS_APP")
        .env_remove("API_TOKENS_CA_CERT")
        .env_remove("API_TOKENS_CLIENT_CERT")
        .env_remove("API_TOKENS_CLIENT_KEY");
    if let Some(secret) = secret {
        command.env("API_TOKENS_TOKEN", secret);
    }
    command
}

/// Runs `api-tokens ARGS` to its end.
async fn cli(app: &TestApp, secret: Option<&str>, args: &[&str]) -> Run {
    let out = command(app.addr, secret, args)
        .output()
        .await
        .expect("run the binary");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(app: &TestApp, args: &[&str]) -> String {
    let run = cli(app, Some(&app.admin.secret), args).await;
    assert!(
        run.ok,
        "api-tokens {args:?} failed:\n{}{}",
        run.stdout, run.stderr
    );
    run.stdout
}

async fn json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let stdout = ok(app, &all).await;
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: not JSON:\n{stdout}"))
}

async fn tokens_create_list_retire(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = json(
        &app,
        &[
            "tokens",
            "create",
            "--type",
            "account",
            "--privilege",
            "normal",
            "--default-app-state",
            "pending",
            "--description",
            "ci deploys",
        ],
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    assert_eq!(created["type"], "account");
    assert_eq!(created["privilege"], "normal");
    assert_eq!(created["default_app_state"], "pending");
    assert_eq!(created["state"], "active");

    let table = ok(&app, &["tokens", "list"]).await;
    let header = table.lines().next().expect("a header");
    assert!(
        header.starts_with("ID") && header.contains("DEFAULT APP STATE"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} listed:\n{table}"));
    assert!(
        row.contains("account") && row.contains("ci deploys"),
        "{row}"
    );
    assert!(!table.contains(&secret), "list never shows secrets");

    let listed = json(&app, &["tokens", "list", "--type", "account"]).await;
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    let retired = json(&app, &["tokens", "retire", &id]).await;
    assert_eq!(retired["state"], "retired");
    let shown = ok(&app, &["tokens", "get", &id]).await;
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("state") && l.ends_with("retired")),
        "{shown}"
    );
    // A retired token acts with no privilege: said so, not "unspecified".
    assert_eq!(retired["effective_privilege"], "none");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("effective privilege") && l.ends_with(" none")),
        "{shown}"
    );
    let table = ok(&app, &["tokens", "list"]).await;
    assert!(!table.contains("unspecified"), "{table}");
    let active = json(&app, &["tokens", "list", "--state", "active"]).await;
    assert!(
        active
            .as_array()
            .expect("array")
            .iter()
            .all(|t| t["id"] != id.as_str()),
        "a retired token is not active"
    );
    app.stop().await;
}

async fn apps_allow_and_members_add(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = &app.admin_token_id;
    let allowed = ok(&app, &["apps", "allow", token, "grafana"]).await;
    let row = allowed.lines().nth(1).expect("a row");
    assert!(
        row.starts_with("grafana") && row.contains("allow"),
        "{allowed}"
    );
    let denied = json(&app, &["apps", "deny", token, "scraper"]).await;
    assert_eq!(denied["state"], "deny");
    let apps = json(&app, &["apps", "list", token]).await;
    let names: Vec<_> = apps
        .as_array()
        .expect("array")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_owned(),
                a["state"].clone(),
            )
        })
        .collect();
    assert!(
        names.contains(&("grafana".into(), "allow".into())),
        "{names:?}"
    );
    assert!(
        names.contains(&("scraper".into(), "deny".into())),
        "{names:?}"
    );
    // The CLI's own name was recorded the first time it called (the admin token allows new names).
    assert!(
        names.iter().any(|(n, _)| n == "api-tokens-cli"),
        "{names:?}"
    );

    let added = json(
        &app,
        &["members", "add", "bob@example.com", "--role", "normal"],
    )
    .await;
    assert_eq!(added["user_name"], "bob@example.com");
    assert_eq!(added["role"], "normal");
    let bob = added["user_id"].as_str().expect("user id").to_owned();
    let members = ok(&app, &["members", "list"]).await;
    assert!(
        members
            .lines()
            .next()
            .unwrap_or_default()
            .starts_with("USER ID"),
        "{members}"
    );
    assert!(
        members
            .lines()
            .any(|l| l.starts_with(&bob) && l.contains("normal")),
        "{members}"
    );
    let promoted = json(&app, &["members", "update", &bob, "--role", "admin"]).await;
    assert_eq!(promoted["role"], "admin");
    ok(&app, &["members", "remove", &bob]).await;
    let members = json(&app, &["members", "list"]).await;
    assert_eq!(members.as_array().expect("array").len(), 1);

    let install = json(&app, &["install-command", token]).await;
    let command = install["command"].as_str().expect("command");
    assert!(
        command.contains("COSI_KEY=\"$CIRCONUS_API_KEY\" bash") && !command.contains("--key"),
        "the key goes to the installer in its environment, never in its arguments: {install}"
    );
    app.stop().await;
}

/// "Retire, then check" on another replica: the retire prints its revision, and a read with
/// `--min-revision` on the other replica sees the retire; a revision not issued is refused.
async fn retire_then_get_on_another_replica_with_its_revision(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let made = json(&app, &["tokens", "create", "--default-app-state", "allow"]).await;
    let id = made["id"].as_str().expect("id").to_owned();
    let retired = cli(&app, Some(&app.admin.secret), &["tokens", "retire", &id]).await;
    assert!(retired.ok, "{}", retired.stderr);
    let revision = retired
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("revision: "))
        .expect("the retire prints its revision")
        .to_owned();
    let on_other = [
        "tokens",
        "get",
        &id,
        "--output",
        "json",
        "--min-revision",
        &revision,
    ];
    let seen = command(other.addr, Some(&app.admin.secret), &on_other)
        .output()
        .await
        .expect("run");
    assert!(
        seen.status.success(),
        "{}",
        String::from_utf8_lossy(&seen.stderr)
    );
    let token: Value = serde_json::from_slice(&seen.stdout).expect("json");
    assert_eq!(token["state"], "retired", "{token}");
    let forged = cli(
        &app,
        Some(&app.admin.secret),
        &["tokens", "get", &id, "--min-revision", "not-a-revision"],
    )
    .await;
    assert!(!forged.ok);
    assert!(forged.stderr.contains("min-revision"), "{}", forged.stderr);
}

/// Conditional approvals, bulk decisions with a reason, previews and bound tokens, as an
/// operator types them.
async fn conditions_batches_previews_and_bound_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let made = json(
        &app,
        &[
            "tokens",
            "create",
            "--privilege",
            "normal",
            "--bound-cidr",
            "10.0.0.0/8",
            "--bound-cidr",
            "192.168.1.7",
        ],
    )
    .await;
    assert_eq!(
        made["bound_cidrs"],
        serde_json::json!(["10.0.0.0/8", "192.168.1.7/32"])
    );
    let id = made["id"].as_str().expect("id").to_owned();
    let anywhere = json(&app, &["tokens", "update", &id, "--anywhere"]).await;
    assert_eq!(anywhere["bound_cidrs"], serde_json::json!([]));

    let allowed = json(
        &app,
        &[
            "apps",
            "allow",
            &id,
            "terraform",
            "--for",
            "30d",
            "--max-privilege",
            "read_only",
            "--cidr",
            "10.0.0.0/8",
            "--reason",
            "CHG-4711",
        ],
    )
    .await;
    assert_eq!(allowed["conditions"]["max_privilege"], "read_only");
    assert_eq!(
        allowed["conditions"]["client_cidrs"],
        serde_json::json!(["10.0.0.0/8"])
    );
    assert!(allowed["conditions"]["expire_time"].is_string());
    let table = ok(&app, &["apps", "list", &id]).await;
    assert!(
        table.contains("at most read_only") && table.contains("from 10.0.0.0/8"),
        "{table}"
    );

    let pair = |name: &str| format!("{id}:{name}");
    let results = json(
        &app,
        &[
            "apps",
            "batch",
            "--allow",
            &pair("grafana"),
            "--deny",
            &pair("circonus:osi:abc"),
            "--reason",
            "quarterly review",
        ],
    )
    .await;
    let results = results.as_array().expect("array");
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| r["code"] == 0 && r["changed"] == true)
    );
    assert_eq!(
        results[1]["name"], "circonus:osi:abc",
        "names keep their colons"
    );

    let preview = json(&app, &["tokens", "retire", &id, "--validate-only"]).await;
    assert_eq!(preview["permitted"], true);
    assert_eq!(preview["usage_window_days"], 30);
    let still = json(&app, &["tokens", "get", &id]).await;
    assert_eq!(still["state"], "active", "a preview changes nothing");
    let member = json(
        &app,
        &["members", "add", "dev@example.com", "--role", "normal"],
    )
    .await;
    let user_id = member["user_id"].as_str().expect("user id").to_owned();
    let preview = json(
        &app,
        &[
            "members",
            "update",
            &user_id,
            "--role",
            "read_only",
            "--validate-only",
        ],
    )
    .await;
    assert_eq!(preview["permitted"], true);
    let preview = json(&app, &["members", "remove", &user_id, "--validate-only"]).await;
    assert_eq!(preview["permitted"], true);
    let preview = ok(&app, &["apps", "deny", &id, "grafana", "--validate-only"]).await;
    assert!(preview.contains("permitted"), "{preview}");
    let apps = json(&app, &["apps", "list", &id]).await;
    assert!(
        apps.as_array()
            .expect("array")
            .iter()
            .any(|a| a["name"] == "grafana" && a["state"] == "allow"),
        "the previewed deny changed nothing"
    );
    app.stop().await;
}

async fn expiry_rotation_and_the_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let policy = json(
        &app,
        &[
            "accounts",
            "policy",
            "set",
            "--max-lifetime",
            "90d",
            "--default-lifetime",
            "30d",
            "--retire-on-reuse",
            "true",
        ],
    )
    .await;
    assert_eq!(policy["max_token_lifetime_seconds"], 90 * 86_400);
    assert_eq!(policy["retire_on_reuse"], true);
    let shown = ok(&app, &["accounts", "policy", "show"]).await;
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("expiry notices") && l.ends_with("30d 7d 1d")),
        "{shown}"
    );
    // The policy's default lifetime, then an explicit one within it.
    let created = json(&app, &["tokens", "create", "--privilege", "normal"]).await;
    assert!(created["expire_time"].is_string(), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let refused = cli(
        &app,
        Some(&app.admin.secret),
        &["tokens", "create", "--expires-in", "120d"],
    )
    .await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("max_token_lifetime"),
        "{}",
        refused.stderr
    );
    let updated = json(&app, &["tokens", "update", &id, "--expires-in", "7d"]).await;
    assert_ne!(updated["expire_time"], created["expire_time"]);
    let soon = json(&app, &["tokens", "list", "--expires-within", "8d"]).await;
    assert_eq!(soon.as_array().expect("array").len(), 1);
    // Rotation: the new secret once, the token's id kept, the overlap shown.
    let rotated = json(&app, &["tokens", "rotate", &id, "--overlap", "1h"]).await;
    assert_eq!(rotated["id"], id.as_str());
    assert_ne!(rotated["secret"], created["secret"]);
    assert_eq!(rotated["previous_secret"]["overlap_seconds"], 3600);
    let table = ok(&app, &["tokens", "rotate", &id, "--overlap", "0"]).await;
    assert!(table.contains("shown only this once"), "{table}");
    app.stop().await;
}

on_both_backends!(
    expiry_rotation_and_the_policy,
    tokens_create_list_retire,
    apps_allow_and_members_add,
    retire_then_get_on_another_replica_with_its_revision,
    conditions_batches_previews_and_bound_tokens,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_missing_credentials_are_clear() {
    let app = spawn_app(Backend::Sqlite).await;
    let missing = cli(&app, None, &["tokens", "list"]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("API_TOKENS_TOKEN"),
        "{}",
        missing.stderr
    );

    let unknown = cli(
        &app,
        Some("fb349ef1-91e4-4b05-aaa2-52246b77ea66"),
        &["tokens", "list"],
    )
    .await;
    assert!(!unknown.ok);
    assert!(
        unknown.stderr.contains("UNAUTHENTICATED"),
        "{}",
        unknown.stderr
    );

    let bad = cli(
        &app,
        Some(&app.admin.secret),
        &["tokens", "get", "not-a-uuid"],
    )
    .await;
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("INVALID_ARGUMENT") && bad.stderr.contains("id"),
        "{}",
        bad.stderr
    );
    assert!(
        !bad.stderr.contains(&app.admin.secret),
        "the secret is never echoed"
    );

    let nothing = cli(
        &app,
        Some(&app.admin.secret),
        &["tokens", "update", &app.admin_token_id],
    )
    .await;
    assert!(!nothing.ok);
    assert!(nothing.stderr.contains("--privilege"), "{}", nothing.stderr);
    app.stop().await;
}

/// A new token for an existing account, from `issue-token` with its defaults, is enough to
/// drive the admin commands (and the README's tour): no one else has to allow its first app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_with_default_settings_can_manage() {
    let app = spawn_app(Backend::Sqlite).await;
    let out = Command::new(env!("CARGO_BIN_EXE_api-tokens"))
        .args([
            "issue-token",
            "--account",
            "acme",
            "--user",
            "admin@example.com",
            "--output",
            "json",
            "--database-url",
            &app.database.url,
        ])
        .output()
        .await
        .expect("run issue-token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let issued: Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = issued["secret"].as_str().expect("secret");
    let run = cli(&app, Some(secret), &["tokens", "list"]).await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(issued["token_id"].as_str().expect("id"))
    );
    app.stop().await;
}
