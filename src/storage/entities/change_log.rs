//! The `change_log` table: every change that can alter a decision or a caller's view, in commit order.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub account_id: Uuid,
    pub kind: String,
    pub token_id: Option<Uuid>,
    pub member_id: Option<Uuid>,
    pub app_name: Option<String>,
    pub state: Option<String>,
    pub created_at: i64,
    /// JSON: what else a change carries (an approval's conditions, the reason given).
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
