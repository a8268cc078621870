//! Last-used times, written behind in batches: never one write per Authorize.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::convert::micros;
use super::entities::{applications, tokens};
use super::{Repository, StorageError};

impl Repository {
    /// Moves last-used times forward (never back), all in one transaction.
    pub async fn write_last_used(
        &self,
        tokens_used: &[(Uuid, DateTime<Utc>)],
        apps_seen: &[((Uuid, String), DateTime<Utc>)],
    ) -> Result<(), StorageError> {
        if tokens_used.is_empty() && apps_seen.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin().await?;
        for (id, at) in tokens_used {
            let at = micros(*at);
            tokens::Entity::update_many()
                .col_expr(tokens::Column::LastUsedAt, Expr::value(at))
                .filter(tokens::Column::Id.eq(*id))
                .filter(
                    tokens::Column::LastUsedAt
                        .is_null()
                        .or(tokens::Column::LastUsedAt.lt(at)),
                )
                .exec(&tx)
                .await?;
        }
        for ((token_id, name), at) in apps_seen {
            let at = micros(*at);
            applications::Entity::update_many()
                .col_expr(applications::Column::LastSeenAt, Expr::value(at))
                .filter(applications::Column::TokenId.eq(*token_id))
                .filter(applications::Column::Name.eq(name.as_str()))
                .filter(applications::Column::LastSeenAt.lt(at))
                .exec(&tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
