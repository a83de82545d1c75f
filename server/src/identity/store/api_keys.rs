//! API keys: only the SHA-256 of the secret is stored.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, StoreError};
use crate::identity::model::ApiKey;
use crate::kernel::principal::{CostCaps, KeyLimits, Scope};

/// A key with the digest of its secret, which only authentication reads.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub key: ApiKey,
    pub secret_hash: String,
}

fn api_key(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    let allowed_models: Option<String> = row.try_get("allowed_models")?;
    let per_minute = |column: &str| -> Result<Option<u32>, StoreError> {
        let stored: Option<i64> = row.try_get(column)?;
        Ok(stored.and_then(|n| u32::try_from(n).ok()))
    };
    Ok(ApiKey {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
        limits: KeyLimits {
            allowed_models: allowed_models.map(|names| names.split_whitespace().map(str::to_owned).collect()),
            requests_per_minute: per_minute("rpm_limit")?,
            tokens_per_minute: per_minute("tpm_limit")?,
            budget_micros: row.try_get("budget_micros")?,
            org_caps: CostCaps::default(),
        },
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn stored_key(row: &AnyRow) -> Result<StoredKey, StoreError> {
    Ok(StoredKey { key: api_key(row)?, secret_hash: row.try_get("secret_hash")? })
}

impl Db {
    pub async fn api_key_insert(&self, stored: &StoredKey) -> Result<(), StoreError> {
        let key = &stored.key;
        let scopes = key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        let limits = &key.limits;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, project_id, user_id, name, prefix, secret_hash, scopes, created_at, \
             expires_at, allowed_models, rpm_limit, tpm_limit, budget_micros) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(&key.project_id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&stored.secret_hash)
        .bind(scopes)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(limits.allowed_models.as_ref().map(|names| names.join(" ")))
        .bind(limits.requests_per_minute.map(i64::from))
        .bind(limits.tokens_per_minute.map(i64::from))
        .bind(limits.budget_micros)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, project_id, user_id, name, prefix, secret_hash, scopes, created_at, expires_at, \
             last_used_at, revoked_at, allowed_models, rpm_limit, tpm_limit, budget_micros FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(stored_key).transpose()
    }

    /// The user's unrevoked keys in id order, after the keyset cursor `after`.
    pub async fn api_keys_of_user(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, project_id, user_id, name, prefix, scopes, created_at, expires_at, \
             last_used_at, revoked_at, allowed_models, rpm_limit, tpm_limit, budget_micros FROM api_keys \
             WHERE user_id = $1 AND revoked_at IS NULL AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(api_key).collect()
    }

    /// Records a use of the key at `at`, unless a later one is recorded.
    pub async fn api_key_touch(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Revokes the user's key; `Ok(false)` when there is no such live key.
    pub async fn api_key_revoke(&self, id: &str, user_id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
