//! The database password, given in the URL's user-info, in its `password` query parameter or
//! in `PGPASSWORD`, never reaches stdout or stderr when start-up fails (an unreachable server,
//! a database that does not exist), in text and JSON logs; and nothing else in the output is
//! masked for resembling it: with a password like `api`, `api_tokens::startup` stays whole.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::BIN;

/// Where the password is given.
#[derive(Debug, Clone, Copy)]
enum Given {
    UserInfo,
    Query,
    PgPassword,
}

const GIVEN: [Given; 3] = [Given::UserInfo, Given::Query, Given::PgPassword];

/// Passwords that are also words of the output, and one that is not.
fn passwords() -> Vec<String> {
    let random = format!("Xr7{}", uuid::Uuid::new_v4().simple());
    vec!["api".into(), "tokens".into(), "postgres".into(), random]
}

/// The URL of `user` at `host_and_db`, the password given as `given`; and the environment.
fn url_with(
    user: &str,
    host_and_db: &str,
    given: Given,
    password: &str,
) -> (String, Vec<(String, String)>) {
    match given {
        Given::UserInfo => (
            format!("postgres://{user}:{password}@{host_and_db}"),
            Vec::new(),
        ),
        Given::Query => (
            format!(
                "postgres://{user}@{host_and_db}?sslmode=disable&password={password}&application_name=api-tokens"
            ),
            Vec::new(),
        ),
        Given::PgPassword => (
            format!("postgres://{user}@{host_and_db}"),
            vec![("PGPASSWORD".into(), password.to_owned())],
        ),
    }
}

/// The output shows neither the password (as a value: a long one not at all) nor a mask
/// anywhere but where a password was.
fn assert_clean(output: &str, password: &str, what: &str) {
    if password.len() > 16 {
        assert!(
            !output.contains(password),
            "{what} shows the password:\n{output}"
        );
    }
    for form in [
        format!(":{password}@"),
        format!("password={password}"),
        format!("Some(\"{password}\")"),
        format!("Some(\\\"{password}\\\")"),
        format!("PGPASSWORD={password}"),
    ] {
        assert!(!output.contains(&form), "{what} shows {form}:\n{output}");
    }
    let unmasked = output
        .replace(":***@", "@")
        .replace("password=***", "password");
    assert!(
        !unmasked.contains("***"),
        "{what} masks more than the password:\n{output}"
    );
}

fn command(dir: &Path, args: &[&str], env: &[(String, String)], format: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .args(["--log-format", format, "--db-connect-timeout-secs", "1"])
        .current_dir(dir)
        .env_remove("API_TOKENS_DATABASE_URL")
        .env_remove("PGPASSWORD")
        .env("RUST_LOG", "trace")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
}

/// `migrate` fails (its last line naming the database without its password).
fn migrate_fails(dir: &Path, url: &str, env: &[(String, String)], format: &str) -> Output {
    let out = command(dir, &["migrate", "--database-url", url], env, format)
        .output()
        .expect("run migrate");
    assert!(!out.status.success(), "migrate on {url} fails");
    out
}

/// `serve` on a database that cannot be reached: it keeps trying, logging so; stopped once it
/// said so. Its whole output.
fn serve_waits(dir: &Path, url: &str, env: &[(String, String)], format: &str) -> String {
    let log = dir.join("serve.log");
    let mut child = command(
        dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--database-check-interval-secs",
            "1",
        ],
        env,
        format,
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("spawn serve");
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("database unreachable") || started.elapsed() > Duration::from_secs(20) {
            break text;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("serve on an unreachable database exited ({status}):\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("database unreachable"),
        "serve retried:\n{text}"
    );
    text
}

/// The target of this crate's start-up lines, as `format` writes it.
fn startup_target(format: &str) -> &'static str {
    match format {
        "json" => "\"target\":\"api_tokens::startup\"",
        _ => " api_tokens::startup: ",
    }
}

fn one_line_naming(out: &Output, url_shown: &str, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stderr.lines().last().unwrap_or_default();
    // "cannot open" or "cannot migrate", as far as the command got.
    assert!(
        last.starts_with("api-tokens: cannot ")
            && last.contains(&format!(" the database at {url_shown}: ")),
        "{what}: {last}"
    );
    format!("{stdout}{stderr}")
}

/// The URL as messages show it.
fn shown(user: &str, host_and_db: &str, given: Given) -> String {
    match given {
        Given::UserInfo => format!("postgres://{user}:***@{host_and_db}"),
        Given::Query => format!(
            "postgres://{user}@{host_and_db}?sslmode=disable&password=***&application_name=api-tokens"
        ),
        Given::PgPassword => format!("postgres://{user}@{host_and_db}"),
    }
}

#[test]
fn an_unreachable_database_never_shows_its_password() {
    let dir = tempfile::tempdir().expect("dir");
    // Nothing listens on port 1.
    let host_and_db = "127.0.0.1:1/api_tokens";
    for password in passwords() {
        for given in GIVEN {
            let (url, env) = url_with("api_tokens", host_and_db, given, &password);
            for format in ["text", "json"] {
                let what = format!("{given:?} {password} {format}");
                let out = migrate_fails(dir.path(), &url, &env, format);
                let output = one_line_naming(&out, &shown("api_tokens", host_and_db, given), &what);
                assert_clean(&output, &password, &format!("migrate {what}"));
                let log = serve_waits(dir.path(), &url, &env, format);
                assert_clean(&log, &password, &format!("serve {what}"));
                assert!(
                    log.contains(startup_target(format)),
                    "serve {what}: target names whole:\n{log}"
                );
            }
        }
    }
    assert!(!dir.path().join("api-tokens.db").exists());
}

/// A database that does not exist on a reachable server: `serve` and `migrate` stop at once.
#[test]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
fn a_missing_database_never_shows_its_password() {
    let admin_url = std::env::var("API_TOKENS_TEST_POSTGRES_URL").expect("PostgreSQL URL");
    let (user, host) = admin_url
        .trim_start_matches("postgres://")
        .split_once('@')
        .expect("a user in the URL");
    let user = user.split(':').next().unwrap_or(user);
    let host = host.split('/').next().unwrap_or(host);
    let host_and_db = format!("{host}/apitokens_no_such_database");
    let dir = tempfile::tempdir().expect("dir");
    for password in passwords() {
        for given in GIVEN {
            let (url, env) = url_with(user, &host_and_db, given, &password);
            for format in ["text", "json"] {
                let what = format!("{given:?} {password} {format}");
                for command_name in ["migrate", "serve"] {
                    let mut args = vec![command_name, "--database-url", url.as_str()];
                    if command_name == "serve" {
                        args.extend(["--listen", "127.0.0.1:0"]);
                    }
                    let out = command(dir.path(), &args, &env, format)
                        .output()
                        .expect("run");
                    assert!(!out.status.success(), "{command_name} {what} fails");
                    let output = one_line_naming(&out, &shown(user, &host_and_db, given), &what);
                    assert_clean(&output, &password, &format!("{command_name} {what}"));
                }
            }
        }
    }
}

/// A PostgreSQL server as far as its password check: it asks each client for its password in
/// clear, keeps what it was sent, and refuses the login. The passwords it was sent.
fn password_catcher() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let caught = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = caught.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut length = [0u8; 4];
                // SSLRequest (answered "no"), then the startup message.
                loop {
                    if stream.read_exact(&mut length).is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(length) as usize - 4];
                    if stream.read_exact(&mut body).is_err() {
                        return;
                    }
                    if body[..4] == 80877103u32.to_be_bytes() {
                        let _ = stream.write_all(b"N");
                        continue;
                    }
                    break;
                }
                // AuthenticationCleartextPassword.
                let _ = stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                let mut tag = [0u8; 1];
                if stream.read_exact(&mut tag).is_err() || stream.read_exact(&mut length).is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(length) as usize - 4];
                if stream.read_exact(&mut body).is_err() {
                    return;
                }
                let password = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body));
                sink.lock().expect("lock").push(password.into_owned());
                let mut fields = Vec::new();
                for (code, text) in [
                    (b'S', "FATAL"),
                    (b'C', "28P01"),
                    (b'M', "password authentication failed"),
                ] {
                    fields.push(code);
                    fields.extend_from_slice(text.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut reply = vec![b'E'];
                reply.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                reply.extend_from_slice(&fields);
                let _ = stream.write_all(&reply);
            });
        }
    });
    (port, caught)
}

/// The password reaches the server, decoded, wherever it was given, though no URL the driver
/// is given holds it.
#[test]
fn the_password_reaches_the_server_as_a_connect_option() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, caught) = password_catcher();
    let host_and_db = format!("127.0.0.1:{port}/api_tokens");
    for (given, written, meant) in [
        (Given::UserInfo, "p%40ss%2Fw0rd", "p@ss/w0rd"),
        (Given::Query, "p%40ss%26w0rd", "p@ss&w0rd"),
        (Given::PgPassword, "p@ss w0rd", "p@ss w0rd"),
    ] {
        caught.lock().expect("lock").clear();
        let (url, env) = url_with("svc", &host_and_db, given, written);
        let out = migrate_fails(dir.path(), &url, &env, "text");
        let output = one_line_naming(
            &out,
            &shown("svc", &host_and_db, given),
            &format!("{given:?}"),
        );
        assert!(
            output.contains("password authentication failed"),
            "{given:?}: {output}"
        );
        assert_clean(&output, meant, &format!("{given:?}"));
        assert!(
            !output.contains("w0rd"),
            "{given:?} shows the password: {output}"
        );
        let caught = caught.lock().expect("lock").clone();
        assert!(
            !caught.is_empty() && caught.iter().all(|p| p == meant),
            "{given:?}: the server got {caught:?}"
        );
    }
}
