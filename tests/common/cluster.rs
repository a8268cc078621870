//! A private PostgreSQL server for one test, in a temporary folder on its own loopback port:
//! the test may crash and restart it without touching the machine's shared server.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// Runs a PostgreSQL program as its own user: the server refuses to run as root.
fn as_postgres(program: &Path) -> Command {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn id(flag: &str) -> u32 {
    let output = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the postgres user exists")
}

impl PrivateCluster {
    /// initdb and start, with trust authentication on 127.0.0.1 only.
    pub fn start() -> PrivateCluster {
        let output = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .expect("pg_config (PostgreSQL's server binaries) is installed");
        let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let dir = tempfile::tempdir().expect("temp dir");
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            std::os::unix::fs::chown(dir.path(), Some(id("-u")), Some(id("-g")))
                .expect("hand the folder to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(dir.path().join("data"));
        run(initdb, "initdb");
        let cluster = PrivateCluster { bin, dir, port };
        cluster.start_again();
        cluster
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(args);
        command
    }

    /// Starts the server (again) on the same port, waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let mut start = self.pg_ctl(&["-w", "-o", &options, "-l"]);
        start.arg(log).arg("start");
        run(start, "pg_ctl start");
    }

    /// Kills the server the way a crash would (`-m immediate`: no checkpoint, every backend
    /// gone at once); committed transactions must survive the recovery at the next start.
    pub fn crash(&self) {
        run(
            self.pg_ctl(&["-w", "-m", "immediate", "stop"]),
            "pg_ctl stop",
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-w", "-m", "immediate", "stop"]).output();
    }
}
