//! Checks every cell of the permission matrix in docs/permissions.md against a running server:
//! the matrix read from the document, the callers and targets each cell needs (here), and one
//! call per RPC (`permissions/rpcs.rs`).
mod rpcs;

use crate::common::{As, Backend, TestApp, spawn_app};
use api_tokens::domain::Privilege;
use api_tokens::grpc::pb;

const CALLERS: [&str; 6] = [
    "Admin user",
    "Normal user",
    "Read-Only user",
    "Admin account",
    "Normal account",
    "Read-Only account",
];

struct Cell {
    rpc: String,
    target: String,
    caller: &'static str,
    expected: String,
}

fn matrix() -> Vec<Cell> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/permissions.md"))
        .expect("doc");
    let start = doc.find("<!-- matrix:start -->").expect("matrix start");
    let end = doc.find("<!-- matrix:end -->").expect("matrix end");
    let mut cells = Vec::new();
    for line in doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| "))
        .skip(1)
    {
        let cols: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(
            cols.len(),
            2 + CALLERS.len(),
            "malformed matrix row: {line}"
        );
        for (caller, expected) in CALLERS.iter().zip(&cols[2..]) {
            if *expected != "—" {
                cells.push(Cell {
                    rpc: cols[0].to_owned(),
                    target: cols[1].to_owned(),
                    caller,
                    expected: (*expected).to_owned(),
                });
            }
        }
    }
    cells
}

struct Caller {
    creds: As,
    /// The member behind a user-token caller.
    user_name: Option<&'static str>,
}

struct World {
    app: TestApp,
    callers: Vec<(&'static str, Caller)>,
    victims: std::sync::atomic::AtomicUsize,
}

impl World {
    async fn new(backend: Backend) -> World {
        let app = spawn_app(backend).await;
        let mut callers = vec![(
            "Admin user",
            Caller {
                creds: app.admin.clone(),
                user_name: Some("admin@example.com"),
            },
        )];
        for (label, user, role) in [
            ("Normal user", "normal@example.com", pb::Privilege::Normal),
            ("Read-Only user", "ro@example.com", pb::Privilege::ReadOnly),
        ] {
            let (_, creds, _) = app.member_with_token(user, role).await;
            callers.push((
                label,
                Caller {
                    creds,
                    user_name: Some(user),
                },
            ));
        }
        for (label, privilege) in [
            ("Admin account", pb::Privilege::Admin),
            ("Normal account", pb::Privilege::Normal),
            ("Read-Only account", pb::Privilege::ReadOnly),
        ] {
            let (_, secret) = app.account_token(privilege).await;
            callers.push((
                label,
                Caller {
                    creds: As::new(secret, "test-suite"),
                    user_name: None,
                },
            ));
        }
        app.add_member("carol@example.com", pb::Privilege::Normal)
            .await;
        World {
            app,
            callers,
            victims: Default::default(),
        }
    }

    fn caller(&self, label: &str) -> &Caller {
        &self
            .callers
            .iter()
            .find(|(l, _)| *l == label)
            .expect("caller")
            .1
    }

    /// A fresh target token for one cell, so cells never see each other's changes.
    async fn target(&self, caller: &Caller, target: &str) -> String {
        match target {
            "own user token" => {
                let user = caller.user_name.expect("user caller");
                let privilege = match user {
                    "ro@example.com" => Privilege::ReadOnly,
                    _ => Privilege::Normal,
                };
                self.app.issue_token(user, Some(privilege)).await.0.id
            }
            "other user token" => {
                self.app
                    .issue_token("carol@example.com", Some(Privilege::Normal))
                    .await
                    .0
                    .id
            }
            "account token" => self.app.account_token(pb::Privilege::Normal).await.0.id,
            other => panic!("unknown target {other}"),
        }
    }

    async fn victim(&self) -> String {
        let n = self
            .victims
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.app
            .add_member(&format!("victim-{n}@example.com"), pb::Privilege::Normal)
            .await
    }
}

async fn every_cell_of_the_matrix_holds(backend: Backend) {
    let cells = matrix();
    assert!(
        cells.len() > 150,
        "the matrix was read ({} cells)",
        cells.len()
    );
    let world = World::new(backend).await;
    let mut failures = Vec::new();
    for cell in &cells {
        let got = world.run(cell).await;
        if got != cell.expected {
            failures.push(format!(
                "{} | {} | {}: expected {}, got {got}",
                cell.rpc, cell.target, cell.caller, cell.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells differ:\n{}",
        failures.len(),
        cells.len(),
        failures.join("\n")
    );
    world.app.stop().await;
}

on_both_backends!(every_cell_of_the_matrix_holds);
