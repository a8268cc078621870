//! The reference approval bot, end to end: the real binary against a running server,
//! deciding by its rules, leaving the rest pending, and resuming from its cursor; over TLS
//! with the admin commands' flags, and stopping with a reason when TLS cannot work.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::BIN;
use crate::common::{Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;

fn start_bot(app: &TestApp, dir: &std::path::Path) -> Child {
    Command::new(BIN)
        .args([
            "approve-bot",
            "--server",
            &format!("http://{}", app.addr),
            "--rules",
        ])
        .arg(dir.join("rules.toml"))
        .arg("--state-file")
        .arg(dir.join("bot.cursor"))
        .env("API_TOKENS_TOKEN", &app.admin.secret)
        .env("API_TOKENS_APP", "approve-bot")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("bot.log")).expect("log"))
        .spawn()
        .expect("start bot")
}

fn stop_bot(mut bot: Child) {
    Command::new("kill")
        .args(["-TERM", &bot.id().to_string()])
        .status()
        .expect("kill");
    assert!(
        bot.wait().expect("wait").success(),
        "the bot exits 0 on SIGTERM"
    );
}

async fn states(app: &TestApp, token_id: &str) -> Vec<(String, pb::AppState)> {
    let mut apps: Vec<_> = app
        .applications(token_id)
        .await
        .into_iter()
        .map(|a| (a.name.clone(), a.state()))
        .collect();
    apps.sort();
    apps
}

async fn wait_for(app: &TestApp, token_id: &str, expected: &[(&str, pb::AppState)]) {
    let mut expected: Vec<(String, pb::AppState)> =
        expected.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = states(app, token_id).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bot did not get there: {now:?} != {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server, a folder for the bot, and a token of the Admin's whose new applications wait
/// for a decision.
async fn with_pending_token(
    backend: Backend,
    token_type: pb::TokenType,
    privilege: pb::Privilege,
) -> (TestApp, tempfile::TempDir, pb::Token, String) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let (token, secret) = app
        .create_token(&app.admin, token_type, privilege, pb::AppState::Pending)
        .await;
    (app, dir, token, secret)
}

/// The bot's rules, in `dir/rules.toml`.
fn write_rules(dir: &std::path::Path, rules: &str) {
    std::fs::write(dir.join("rules.toml"), rules).expect("rules");
}

/// First uses of these names by `secret`: each is Pending until decided.
async fn first_uses(app: &TestApp, secret: &str, names: &[&str]) {
    for name in names {
        app.authorize(secret, name, pb::Privilege::ReadOnly).await;
    }
}

async fn the_bot_decides_by_rules_and_resumes_after_a_restart(backend: Backend) {
    use pb::AppState::{Allow, Deny, Pending};
    let (app, dir, token, secret) =
        with_pending_token(backend, pb::TokenType::User, pb::Privilege::Normal).await;
    write_rules(
        dir.path(),
        &format!(
            "[[rule]]\npattern = \"circonus:osi:*\"\naction = \"allow\"\n\n\
             [[rule]]\npattern = \"curl*\"\naction = \"deny\"\ntoken_id = \"{}\"\n",
            token.id
        ),
    );
    // Pending before the bot starts: it finds them in its first snapshot.
    first_uses(
        &app,
        &secret,
        &["circonus:osi:0018fd34", "Grafana Translator"],
    )
    .await;
    let bot = start_bot(&app, dir.path());
    wait_for(
        &app,
        &token.id,
        &[
            ("circonus:osi:0018fd34", Allow),
            ("Grafana Translator", Pending),
        ],
    )
    .await;
    // Live.
    app.authorize(&secret, "curl/8.4", pb::Privilege::ReadOnly)
        .await;
    wait_for(
        &app,
        &token.id,
        &[
            ("circonus:osi:0018fd34", Allow),
            ("Grafana Translator", Pending),
            ("curl/8.4", Deny),
        ],
    )
    .await;
    stop_bot(bot);
    let saved =
        std::fs::read_to_string(dir.path().join("bot.cursor")).expect("the bot saved its cursor");
    assert!(!saved.is_empty());

    // While it is down, more names arrive; after a restart it resumes from its cursor.
    first_uses(&app, &secret, &["circonus:osi:ffee", "curl/7.0"]).await;
    let bot = start_bot(&app, dir.path());
    wait_for(
        &app,
        &token.id,
        &[
            ("circonus:osi:0018fd34", Allow),
            ("Grafana Translator", Pending),
            ("curl/8.4", Deny),
            ("circonus:osi:ffee", Allow),
            ("curl/7.0", Deny),
        ],
    )
    .await;
    stop_bot(bot);
    let log = std::fs::read_to_string(dir.path().join("bot.log")).expect("bot log");
    assert!(
        log.contains("resuming from the saved cursor"),
        "the restarted bot used its cursor:\n{log}"
    );
    assert!(
        !log.contains(&app.admin.secret),
        "the bot never logs its token"
    );
    app.stop().await;
}

/// A dry run prints what the rules would decide for what is pending now, changes nothing and
/// exits; a real run allows with the rule's conditions and names the rule as the reason.
async fn the_bot_allows_with_conditions_and_a_dry_run_changes_nothing(backend: Backend) {
    use pb::AppState::{Allow, Pending};
    let (app, dir, token, secret) =
        with_pending_token(backend, pb::TokenType::Account, pb::Privilege::Admin).await;
    write_rules(
        dir.path(),
        "[[rule]]\npattern = \"terraform*\"\naction = \"allow\"\nfor = \"30d\"\n\
         max_privilege = \"read_only\"\ncidrs = [\"10.0.0.0/8\"]\n",
    );
    first_uses(&app, &secret, &["terraform 1.9", "grafana"]).await;

    let out = Command::new(BIN)
        .args([
            "approve-bot",
            "--server",
            &format!("http://{}", app.addr),
            "--dry-run",
            "--rules",
        ])
        .arg(dir.path().join("rules.toml"))
        .arg("--state-file")
        .arg(dir.path().join("dry.cursor"))
        .env("API_TOKENS_TOKEN", &app.admin.secret)
        .env("API_TOKENS_APP", "approve-bot")
        .output()
        .expect("dry run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("would allow {}/terraform 1.9", token.id))
            && printed.contains("for 30d, at most read_only, from 10.0.0.0/8"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("would leave pending {}/grafana", token.id)),
        "{printed}"
    );
    assert!(
        !dir.path().join("dry.cursor").exists(),
        "a dry run saves no cursor"
    );
    assert_eq!(
        states(&app, &token.id).await,
        [
            ("grafana".to_owned(), Pending),
            ("terraform 1.9".to_owned(), Pending)
        ],
        "a dry run changes nothing"
    );

    let bot = start_bot(&app, dir.path());
    wait_for(
        &app,
        &token.id,
        &[("grafana", Pending), ("terraform 1.9", Allow)],
    )
    .await;
    stop_bot(bot);
    let terraform = app.application(&token.id, "terraform 1.9").await;
    let conditions = terraform.conditions.clone().expect("conditions");
    assert_eq!(conditions.max_privilege(), pb::Privilege::ReadOnly);
    assert_eq!(conditions.client_cidrs, ["10.0.0.0/8"]);
    let days =
        (conditions.expire_time.expect("an end").seconds - chrono::Utc::now().timestamp()) / 86_400;
    assert!((29..=30).contains(&days), "{days} days");
    let audit = app
        .audit_events(&format!("{}/terraform 1.9", token.id))
        .await;
    assert!(
        audit[0].reason.contains("approve-bot rule 1"),
        "{}",
        audit[0].reason
    );
    // The token acts at most Read-Only for it, and only from 10.0.0.0/8.
    let from = |client, required| {
        let (app, secret) = (&app, &secret);
        async move {
            app.authorize_from(secret, "terraform 1.9", required, client)
                .await
                .decision()
        }
    };
    assert_eq!(
        from("10.9.9.9", pb::Privilege::ReadOnly).await,
        pb::Decision::Allow
    );
    assert_eq!(
        from("10.9.9.9", pb::Privilege::Normal).await,
        pb::Decision::InsufficientPrivilege
    );
    assert_eq!(
        from("172.16.0.1", pb::Privilege::ReadOnly).await,
        pb::Decision::AddressNotAllowed
    );
    app.stop().await;
}

on_both_backends!(
    the_bot_decides_by_rules_and_resumes_after_a_restart,
    the_bot_allows_with_conditions_and_a_dry_run_changes_nothing,
);

/// The bot against `server` with extra flags, its log in `dir/bot.log`.
fn start_bot_at(app: &TestApp, dir: &std::path::Path, server: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["approve-bot", "--server", server, "--rules"])
        .arg(dir.join("rules.toml"))
        .arg("--state-file")
        .arg(dir.join("bot.cursor"))
        .args(extra)
        .env("API_TOKENS_TOKEN", &app.admin.secret)
        .env_remove("API_TOKENS_APP")
        .env_remove("API_TOKENS_SERVER")
        .env_remove("API_TOKENS_CA_CERT")
        .env_remove("API_TOKENS_CLIENT_CERT")
        .env_remove("API_TOKENS_CLIENT_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("bot.log")).expect("log"))
        .spawn()
        .expect("start bot")
}

/// Waits for the bot to exit by itself; one still running after a minute retries for ever.
async fn exit_of(mut bot: Child, dir: &std::path::Path) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = bot.try_wait().expect("wait") {
            let log = std::fs::read_to_string(dir.join("bot.log")).expect("bot log");
            return (status, log);
        }
        if Instant::now() > deadline {
            let _ = bot.kill();
            let _ = bot.wait();
            let log = std::fs::read_to_string(dir.join("bot.log")).expect("bot log");
            panic!("the bot keeps retrying a set-up that cannot work:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_speaks_tls_with_the_admin_flags_and_stops_when_tls_cannot_work() {
    use crate::common::tls::{Pki, tls_replica};
    let app = spawn_app(Backend::Sqlite).await;
    let pki = Pki::generate();
    let replica = tls_replica(&app, &pki).await;
    let dir = tempfile::tempdir().expect("dir");
    write_rules(
        dir.path(),
        "[[rule]]\npattern = \"circonus:osi:*\"\naction = \"allow\"\n",
    );
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    app.authorize(&secret, "circonus:osi:tls", pb::Privilege::ReadOnly)
        .await;
    let https = format!("https://localhost:{}", replica.addr.port());
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().expect("utf-8 path");

    // Over TLS with the CA that signed the server's certificate, as the admin commands take it.
    let bot = start_bot_at(&app, dir.path(), &https, &["--ca-cert", ca]);
    wait_for(
        &app,
        &token.id,
        &[("circonus:osi:tls", pb::AppState::Allow)],
    )
    .await;
    stop_bot(bot);

    // Set-ups that cannot work end the bot with the reason, instead of retrying for ever.
    let other = Pki::generate();
    let wrong_ca = other.path("ca.pem");
    let plaintext = format!("http://127.0.0.1:{}", replica.addr.port());
    let tls_to_plaintext = format!("https://localhost:{}", app.addr.port());
    let cases: [(&str, &str, Vec<&str>, &str); 6] = [
        ("plaintext to a TLS port", &plaintext, vec![], "https://"),
        ("https without a CA", &https, vec![], "--ca-cert"),
        (
            "a CA with http://",
            &plaintext,
            vec!["--ca-cert", ca],
            "https://",
        ),
        ("no scheme", "127.0.0.1:1", vec![], "http://"),
        (
            "a CA that did not sign the server's certificate",
            &https,
            vec!["--ca-cert", wrong_ca.to_str().expect("utf-8")],
            "TLS",
        ),
        (
            "TLS to a plaintext port",
            &tls_to_plaintext,
            vec!["--ca-cert", ca],
            "TLS",
        ),
    ];
    for (case, server, flags, reason) in cases {
        let bot = start_bot_at(&app, dir.path(), server, &flags);
        let (status, log) = exit_of(bot, dir.path()).await;
        assert!(!status.success(), "{case}: the bot fails\n{log}");
        assert!(
            log.contains(reason),
            "{case}: the reason names {reason:?}:\n{log}"
        );
        assert!(
            !log.contains(&app.admin.secret),
            "{case}: no token in the log"
        );
    }
    drop(replica);
    app.stop().await;
}
