//! The server under load and its database: the binary built with this example's profile, its
//! process (killed when dropped), its CPU time and memory from /proc, and the PostgreSQL
//! statistics of the bench's database.
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};

use super::support::{TestDatabase, status_field};

/// The server process; killed when dropped so an error path leaves nothing running.
pub struct ServerProcess {
    pub child: Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Transactions committed and rolled back in the bench database so far (PostgreSQL), read
/// over the server's maintenance connection, not the bench database's own, so that the read
/// does not count itself. An idle backend sends its statistics up to 10 s late (PostgreSQL
/// 15), so callers wait that long, with no load, before reading.
pub async fn transactions(database: &TestDatabase) -> Option<u64> {
    let (admin_url, name) = database.postgres()?;
    let admin = Database::connect(admin_url).await.ok()?;
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .ok()??;
    let _ = admin.close().await;
    row.try_get::<i64>("", "n")
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

pub fn describe(database: &TestDatabase) -> String {
    match database.postgres() {
        Some((_, name)) => format!("PostgreSQL (fresh database {name})"),
        None => "SQLite (temporary file)".into(),
    }
}

/// Builds the server binary with the profile this example was built with.
pub fn build_server() -> anyhow::Result<PathBuf> {
    let release = !cfg!(debug_assertions);
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench -> target/<profile>/api-tokens
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--bin")
        .arg("api-tokens")
        .arg("--manifest-path")
        .arg(&manifest);
    if release {
        build.arg("--release");
    }
    // `cargo run` gives this process the package's CARGO_PKG_*, CARGO_MANIFEST_* (and so
    // on) variables. Some build scripts (ring's) rerun when those change, so passing them
    // on would rebuild half the dependency tree on every switch between `cargo run` and
    // running this binary directly.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name)
        {
            build.env_remove(&*name);
        }
    }
    eprintln!("building the server: {build:?}");
    let status = build.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the server failed");
    }
    Ok(profile_dir.join("api-tokens"))
}

/// User plus system CPU time of a process so far, from /proc/PID/stat.
pub fn server_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = ticks(11) + ticks(12);
    Duration::from_secs_f64(total as f64 / clock_ticks_per_second())
}

/// Asked once: a subprocess per phase would be client work inside the measurement.
pub fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// VmRSS (now) and VmHWM (peak) from /proc/PID/status.
pub fn rss(pid: u32) -> String {
    let field = |name| status_field(pid, name).unwrap_or_else(|| "?".into());
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}
