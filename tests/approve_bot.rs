//! The reference approval bot, end to end: the real binary against a running server,
//! deciding by its rules, leaving the rest pending, and resuming from its cursor.
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_tokens::grpc::pb;
use common::process::BIN;
use common::{Backend, TestApp, spawn_app};

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
        .tokens
        .clone()
        .list_applications(app.admin.req(pb::ListApplicationsRequest {
            token_id: token_id.into(),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .applications
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

async fn the_bot_decides_by_rules_and_resumes_after_a_restart(backend: Backend) {
    use pb::AppState::{Allow, Deny, Pending};
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let (token, secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::User,
            pb::Privilege::Normal,
            Pending,
        )
        .await;
    std::fs::write(
        dir.path().join("rules.toml"),
        format!(
            "[[rule]]\npattern = \"circonus:osi:*\"\naction = \"allow\"\n\n\
             [[rule]]\npattern = \"curl*\"\naction = \"deny\"\ntoken_id = \"{}\"\n",
            token.id
        ),
    )
    .expect("rules");
    // Pending before the bot starts: it finds them in its first snapshot.
    app.authorize(&secret, "circonus:osi:0018fd34", pb::Privilege::ReadOnly)
        .await;
    app.authorize(&secret, "Grafana Translator", pb::Privilege::ReadOnly)
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
    app.authorize(&secret, "circonus:osi:ffee", pb::Privilege::ReadOnly)
        .await;
    app.authorize(&secret, "curl/7.0", pb::Privilege::ReadOnly)
        .await;
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

on_both_backends!(the_bot_decides_by_rules_and_resumes_after_a_restart);
