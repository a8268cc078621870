//! Schema migrations, run at start-up (see `storage::connect`).
use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_event_horizon;
mod m0003_create_requests;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_event_horizon::Migration),
            Box::new(m0003_create_requests::Migration),
        ]
    }
}
