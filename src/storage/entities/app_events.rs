//! The `app_events` table: the outbox of application changes that WatchApplications streams.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "app_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub account_id: Uuid,
    pub token_id: Uuid,
    pub app_name: String,
    pub kind: String,
    pub state: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
