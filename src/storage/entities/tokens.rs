//! The `tokens` table. Holds the SHA-256 digest of each secret, never the secret.
use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub token_type: String,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub secret_digest: Vec<u8>,
    pub privilege: String,
    pub default_app_state: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub retired_at: Option<i64>,
    pub promoted_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub app_count: i64,
    /// The address ranges the token may be used from, comma-separated; `None`: anywhere.
    pub bound_cidrs: Option<String>,
    /// When the token stops working; `None`: never.
    pub expire_at: Option<i64>,
    pub rotated_at: Option<i64>,
    /// The overlap of the secret rotated out last; `None`: never rotated.
    pub previous_overlap_micros: Option<i64>,
    /// When the secret rotated out last stops working; `None` while its overlap waits for
    /// this secret's first use.
    pub previous_ends_at: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tokens::Model")
            .field("id", &self.id)
            .field("secret_digest", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
