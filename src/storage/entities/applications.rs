//! The `applications` table: application names recorded under each token.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "applications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub token_id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub state: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub updated_at: i64,
    /// An Allow's conditions: its end, its privilege cap, its address ranges (comma-separated).
    pub cond_until: Option<i64>,
    pub cond_max_privilege: Option<String>,
    pub cond_cidrs: Option<String>,
    /// Evidence, written behind: calls refused while Pending or Denied, calls allowed, and
    /// the last client address seen.
    pub refused_attempts: i64,
    pub allowed_count: i64,
    pub last_client_address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
