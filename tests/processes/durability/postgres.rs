//! PostgreSQL failing writes under two server processes and six clients, on a server of the
//! test's own: first its backends are killed again and again mid-transaction
//! (`pg_terminate_backend`), then the tablespace the tables live in (a small tmpfs) fills up
//! and, once writes have gone on being refused for a while, is freed and two clients write
//! again. Every write acknowledged at any point is there after SIGTERM, a crash of
//! PostgreSQL and a restart; refusals were UNAVAILABLE, the full tablespace's with
//! STORAGE_UNWRITABLE; reads and warm Authorize went on; health showed the write side
//! NOT_SERVING, and SERVING again once writes were stored again, without a restart.
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;

use super::{
    Ledger, Tmpfs, missing_after_restart, print_counts, reads_still_work, start_writers,
    stop_writers, wait_for, wait_health,
};
use crate::common::As;
use crate::common::TestDatabase;
use crate::common::cluster::PrivateCluster;
use crate::common::process::{BOOTSTRAP_ACME, ServerProcess, json_of, run};

const TOKENS: &str = "apitokens.v1.TokenService";

fn postgres_id(flag: &str) -> String {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A tablespace on a small tmpfs of its own, the default of the test database's tables.
async fn small_tablespace(database: &TestDatabase) -> Tmpfs {
    let disk = Tmpfs::mount(
        "24m",
        &format!(
            "uid={},gid={},mode=0700",
            postgres_id("-u"),
            postgres_id("-g")
        ),
    );
    let name = database.postgres_name();
    let location = disk.path().join("tablespace");
    let made = Command::new("runuser")
        .args(["-u", "postgres", "--", "mkdir"])
        .arg(&location)
        .status()
        .expect("mkdir");
    assert!(made.success());
    database
        .admin_sql(&format!(
            "CREATE TABLESPACE small_{name} LOCATION '{}'",
            location.display()
        ))
        .await;
    database
        .admin_sql(&format!(
            "ALTER DATABASE {name} SET default_tablespace = small_{name}"
        ))
        .await;
    disk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn acknowledged_writes_survive_killed_backends_and_a_full_tablespace() {
    let cluster = PrivateCluster::start();
    let database = TestDatabase::create_on_postgres(&cluster.admin_url()).await;
    let disk = small_tablespace(&database).await;
    let name = database.postgres_name().to_owned();
    let work = tempfile::tempdir().expect("work dir");
    let url = database.url.clone();
    let made = json_of(&run(
        work.path(),
        &[&BOOTSTRAP_ACME[..], &["--database-url", &url]].concat(),
    ));
    let admin = As::new(made["secret"].as_str().expect("secret"), "durability-test");
    let admin_token_id = made["token_id"].as_str().expect("token id").to_owned();
    let flags = [
        "--database-url",
        url.as_str(),
        "--database-check-interval-secs",
        "1",
    ];
    let servers = [
        ServerProcess::start(work.path(), &flags, "warn").await,
        ServerProcess::start(work.path(), &flags, "warn").await,
    ];
    let channels: Vec<_> = servers.iter().map(|s| s.channel.clone()).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&channels, 3, u64::MAX, "kills", &admin, &ledger, &stop);
    wait_for(
        &ledger,
        Duration::from_secs(60),
        "writes before any failure",
        |l| l.created.len() >= 20,
    )
    .await;

    // Backends killed mid-transaction, at kill points spread over the writes.
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    for pause_ms in [90u64, 170, 40, 260, 130, 60, 210, 110] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        database.admin_sql(&kill).await;
    }
    let after_kills = ledger.lock().unwrap().created.len();
    wait_for(
        &ledger,
        Duration::from_secs(60),
        "writes succeed again after the kills",
        |l| l.created.len() >= after_kills + 20,
    )
    .await;
    stop_writers(writers, &stop).await;
    let kills = std::mem::take(&mut *ledger.lock().unwrap());
    print_counts("PostgreSQL, backends killed", &kills);

    // The tablespace fills up, and writes go on being tried.
    let filler = disk.fill();
    let writers = start_writers(&channels, 3, u64::MAX, "full", &admin, &ledger, &stop);
    let unwritable = |l: &Ledger| {
        l.refused
            .get("Unavailable STORAGE_UNWRITABLE")
            .copied()
            .unwrap_or(0)
    };
    wait_for(
        &ledger,
        Duration::from_secs(120),
        "the full tablespace refuses writes as STORAGE_UNWRITABLE",
        |l| unwritable(l) >= 100,
    )
    .await;
    for channel in &channels {
        reads_still_work(channel, &admin, &admin_token_id).await;
        wait_health(channel, TOKENS, ServingStatus::NotServing).await;
    }
    stop_writers(writers, &stop).await;
    let full = std::mem::take(&mut *ledger.lock().unwrap());
    print_counts("PostgreSQL, full tablespace", &full);

    // Space comes back: every write is stored, and health follows the first that commits.
    std::fs::remove_file(filler).expect("free the tablespace");
    for writer in start_writers(&channels, 1, 5, "freed", &admin, &ledger, &stop) {
        writer.await.expect("writer");
    }
    let freed = std::mem::take(&mut *ledger.lock().unwrap());
    print_counts("PostgreSQL, tablespace freed", &freed);
    assert_eq!(
        (freed.created.len(), freed.refusals()),
        (10, 0),
        "once space is back every write is stored"
    );
    for channel in &channels {
        wait_health(channel, TOKENS, ServingStatus::Serving).await;
    }

    for server in servers {
        let (status, log) = server.terminate();
        assert!(status.success(), "SIGTERM exits 0: {status}\n{log}");
    }
    // PostgreSQL crashes too: what was acknowledged was committed, so recovery keeps it.
    cluster.crash();
    cluster.start_again();
    let server = ServerProcess::start(work.path(), &flags, "warn").await;
    let mut missing = 0;
    for ledger in [&kills, &full, &freed] {
        missing += missing_after_restart(&server.channel, &admin, ledger).await;
    }
    println!(
        "{} writes acknowledged in all; {missing} missing after the restart",
        kills.acknowledged() + full.acknowledged() + freed.acknowledged()
    );
    assert_eq!(
        missing, 0,
        "every acknowledged write is there after a restart"
    );
    for ledger in [&kills, &full, &freed] {
        assert!(
            ledger.exceptions.is_empty(),
            "every refusal was UNAVAILABLE: {:?}",
            &ledger.exceptions[..ledger.exceptions.len().min(10)]
        );
    }
    let (status, _) = server.terminate();
    assert!(status.success());
    database
        .admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    database
        .admin_sql(&format!("DROP TABLESPACE IF EXISTS small_{name}"))
        .await;
}
