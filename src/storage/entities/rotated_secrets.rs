//! The `rotated_secrets` table: the digest (never the secret) of every secret rotated out,
//! with its overlap and its first use after it.
use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rotated_secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub digest: Vec<u8>,
    pub token_id: Uuid,
    pub account_id: Uuid,
    pub rotated_at: i64,
    pub overlap_micros: i64,
    /// When it stops working; `None` while its overlap waits for the new secret's first use.
    pub ends_at: Option<i64>,
    /// Its first use after it stopped working.
    pub reused_at: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("rotated_secrets::Model")
            .field("token_id", &self.token_id)
            .field("digest", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
