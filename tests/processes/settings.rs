//! Settings the binary cannot honour, through the real binary: each is refused in one line
//! on stderr, with no backtrace and a non-zero exit, before anything is written (no
//! migration, no SQLite file); none is silently replaced by a default.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::BIN;
use crate::common::{Backend, TestDatabase};

/// Runs the binary in `dir` with `env`; a process still running after a while accepted the
/// setting, so it is killed and reported as such.
fn run_refused(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("API_TOKENS_DATABASE_URL")
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{args:?} {env:?} was accepted (still running):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// The refusal: a non-zero exit and one line on stderr naming `flag`, without a backtrace.
fn assert_refused_in_one_line(out: &Output, what: &str, flag: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} is refused: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{what} panicked: {stderr}");
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line: {stderr}");
    assert!(lines[0].starts_with("api-tokens: "), "{what}: {stderr}");
    assert!(lines[0].contains(flag), "{what} names {flag}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{what}: {stderr}"
    );
}

on_both_backends!(unhonourable_database_and_server_settings_exit_before_writing);

async fn unhonourable_database_and_server_settings_exit_before_writing(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let proxies: Vec<String> = (0..65).map(|i| format!("10.{i}.0.0/16")).collect();
    let proxies = proxies.join(",");
    let listen = ["--listen", "127.0.0.1:0"];
    // (flag, value), refused by both `serve` and `migrate` (the database's settings) ...
    let database_settings = [
        ("--db-max-connections", "0"),
        ("--db-max-connections", "4294967295"),
        ("--db-connect-timeout-secs", "0"),
        ("--db-connect-timeout-secs", "18446744073709551615"),
    ];
    // ... and by `serve`.
    let server_settings = [
        ("--trusted-proxies", proxies.as_str()),
        ("--last-used-interval-secs", "0"),
        ("--cache-max-tokens", "0"),
        ("--event-retention-hours", "0"),
        ("--event-retention-hours", "18446744073709551615"),
        ("--database-check-interval-secs", "18446744073709551615"),
        ("--watch-heartbeat-secs", "18446744073709551615"),
        ("--otlp-endpoint", "ftp://collector:4317"),
        ("--otlp-endpoint", ""),
    ];
    for (flag, value) in database_settings {
        for command in ["serve", "migrate"] {
            let mut args = vec![command, "--database-url", &database.url, flag, value];
            if command == "serve" {
                args.extend(listen);
            }
            let out = run_refused(dir.path(), &args, &[]);
            assert_refused_in_one_line(&out, &format!("{command} {flag} {value}"), flag);
        }
    }
    for (flag, value) in server_settings {
        let args = [
            &["serve", "--database-url", &database.url, flag, value][..],
            &listen,
        ]
        .concat();
        let out = run_refused(dir.path(), &args, &[]);
        assert_refused_in_one_line(&out, &format!("serve {flag} {value:.30}"), flag);
    }
    // The same through the environment, where a list is easiest to get wrong.
    let out = run_refused(
        dir.path(),
        &[&["serve", "--database-url", &database.url][..], &listen].concat(),
        &[("API_TOKENS_TRUSTED_PROXIES", &proxies)],
    );
    assert_refused_in_one_line(&out, "API_TOKENS_TRUSTED_PROXIES", "--trusted-proxies");
    let out = run_refused(
        dir.path(),
        &["migrate", "--database-url", &database.url],
        &[("API_TOKENS_DB_MAX_CONNECTIONS", "0")],
    );
    assert_refused_in_one_line(
        &out,
        "API_TOKENS_DB_MAX_CONNECTIONS",
        "--db-max-connections",
    );

    // Nothing was written: no SQLite file, no table on PostgreSQL.
    match backend {
        Backend::Sqlite => {
            let path = database
                .url
                .trim_start_matches("sqlite://")
                .trim_end_matches("?mode=rwc");
            assert!(!Path::new(path).exists(), "no database file at {path}");
        }
        Backend::Postgres => {
            let tables = database
                .count(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .await;
            assert_eq!(tables, 0, "no migration ran");
        }
    }
    assert!(!dir.path().join("api-tokens.db").exists());
}

/// The approval bot and the notifier keep a cursor file: one that cannot be written is found
/// at start-up, not after the first decision or delivery.
#[test]
fn a_state_file_that_cannot_be_written_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("rules.toml"), "").expect("rules");
    let missing = dir.path().join("no-such-dir").join("cursor");
    let missing = missing.to_str().expect("utf-8 path");
    let a_directory = dir.path().to_str().expect("utf-8 path");
    let env = [
        ("API_TOKENS_TOKEN", "00000000-0000-4000-8000-000000000000"),
        ("API_TOKENS_WEBHOOK_SECRET", "key"),
        // Nothing listens here: were the file accepted, the command would retry forever.
        ("API_TOKENS_SERVER", "http://127.0.0.1:1"),
    ];
    for path in [missing, a_directory] {
        let bot = ["approve-bot", "--rules", "rules.toml", "--state-file", path];
        let out = run_refused(dir.path(), &bot, &env);
        assert_refused_in_one_line(
            &out,
            &format!("approve-bot --state-file {path}"),
            "--state-file",
        );
        let notify = [
            "notify",
            "--url",
            "http://127.0.0.1:1/hook",
            "--state-file",
            path,
        ];
        let out = run_refused(dir.path(), &notify, &env);
        assert_refused_in_one_line(&out, &format!("notify --state-file {path}"), "--state-file");
    }
}

/// Names the commands would only find unusable later (after creating and migrating the
/// database, or at the server) are refused at start, in one line, with nothing written.
#[test]
fn names_that_cannot_be_used_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("rules.toml"), "").expect("rules");
    let env = [
        ("API_TOKENS_TOKEN", "00000000-0000-4000-8000-000000000000"),
        ("API_TOKENS_WEBHOOK_SECRET", "key"),
        ("API_TOKENS_SERVER", "http://127.0.0.1:1"),
    ];
    let control = "ac\tme";
    for (args, flag) in [
        (
            &["bootstrap", "--account", "", "--admin", "ops@example.com"][..],
            "--account",
        ),
        (
            &[
                "bootstrap",
                "--account",
                control,
                "--admin",
                "ops@example.com",
            ],
            "--account",
        ),
        (
            &[
                "issue-token",
                "--account",
                control,
                "--user",
                "ops@example.com",
            ],
            "--account",
        ),
        (
            &["issue-token", "--account", "acme", "--user", ""],
            "--user",
        ),
        (
            &["approve-bot", "--rules", "rules.toml", "--app", "caf\u{e9}"],
            "--app",
        ),
        (
            &["notify", "--url", "http://127.0.0.1:1/hook", "--app", ""],
            "--app",
        ),
        (&["tokens", "list", "--app", "caf\u{e9}"], "--app"),
    ] {
        let out = run_refused(dir.path(), args, &env);
        assert_refused_in_one_line(&out, &format!("{args:?}"), flag);
    }
    assert!(
        !dir.path().join("api-tokens.db").exists(),
        "no database was created"
    );
}
