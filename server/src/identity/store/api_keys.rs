//! API keys: only the SHA-256 of the secret is stored.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, StoreError};
use crate::kernel::principal::{CostCaps, KeyLimits};

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub org_id: String,
    /// The project the key is narrowed to, if any.
    pub project_id: Option<String>,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    /// Space-separated scope names.
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub limits: KeyLimitsRow,
}

/// What a key may do through the gateway; `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLimitsRow {
    /// Space-separated route names.
    pub allowed_models: Option<String>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_micros: Option<i64>,
}

fn api_key(row: &AnyRow) -> Result<ApiKeyRow, StoreError> {
    Ok(ApiKeyRow {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        limits: KeyLimitsRow {
            allowed_models: row.try_get("allowed_models")?,
            rpm_limit: row.try_get("rpm_limit")?,
            tpm_limit: row.try_get("tpm_limit")?,
            budget_micros: row.try_get("budget_micros")?,
        },
    })
}

impl Db {
    pub async fn api_key_insert(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
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
        .bind(&key.secret_hash)
        .bind(&key.scopes)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(&key.limits.allowed_models)
        .bind(key.limits.rpm_limit)
        .bind(key.limits.tpm_limit)
        .bind(key.limits.budget_micros)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, project_id, user_id, name, prefix, secret_hash, scopes, created_at, expires_at, \
             last_used_at, revoked_at, allowed_models, rpm_limit, tpm_limit, budget_micros FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(api_key).transpose()
    }

    /// The user's unrevoked keys in id order, after the keyset cursor `after`.
    pub async fn api_keys_of_user(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, project_id, user_id, name, prefix, secret_hash, scopes, created_at, expires_at, \
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

impl From<&KeyLimitsRow> for KeyLimits {
    fn from(row: &KeyLimitsRow) -> Self {
        Self {
            allowed_models: row
                .allowed_models
                .as_ref()
                .map(|names| names.split_whitespace().map(str::to_owned).collect()),
            requests_per_minute: row.rpm_limit.and_then(|n| u32::try_from(n).ok()),
            tokens_per_minute: row.tpm_limit.and_then(|n| u32::try_from(n).ok()),
            budget_micros: row.budget_micros,
            org_caps: CostCaps::default(),
        }
    }
}

impl From<&KeyLimits> for KeyLimitsRow {
    fn from(limits: &KeyLimits) -> Self {
        KeyLimitsRow {
            allowed_models: limits.allowed_models.as_ref().map(|names| names.join(" ")),
            rpm_limit: limits.requests_per_minute.map(i64::from),
            tpm_limit: limits.tokens_per_minute.map(i64::from),
            budget_micros: limits.budget_micros,
        }
    }
}
