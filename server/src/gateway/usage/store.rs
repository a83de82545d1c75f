//! Gateway usage: one row per request, written in batches, read back as
//! sums for budgets and as aggregates for `GET /v1/usage`.

use sqlx::Row;

use crate::db::{Db, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub id: String,
    pub occurred_at: i64,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: String,
    pub key_id: Option<String>,
    pub route: String,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
    /// The HTTP status the client got; 499 when it went away first.
    pub status: i64,
    pub usage_source: UsageSource,
    /// The run whose model step this call was.
    pub run_id: Option<String>,
}

/// Where a usage row's token counts come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsageSource {
    /// The provider's own report (or nothing used: no provider answered).
    #[default]
    Reported,
    /// Counted by Switchyard's tokenizer: the provider reported none.
    Estimated,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Estimated => "estimated",
        }
    }
}

/// What `GET /v1/usage` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGrouping {
    Model,
    Key,
    Project,
    Day,
}

/// The aggregate query grouped by `$group`, a column or expression literal:
/// each grouping is its own constant query, built by `concat!`.
macro_rules! usage_aggregate_sql {
    ($group:literal) => {
        concat!(
            "SELECT CAST(",
            $group,
            " AS TEXT) AS grp, COUNT(*) AS requests, \
             CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
             CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
             CAST(SUM(cost_micros) AS BIGINT) AS cost_micros, \
             CAST(SUM(CASE WHEN usage_source = 'estimated' THEN 1 ELSE 0 END) AS BIGINT) AS estimated \
             FROM usage_records WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
             AND ($4 = '' OR project_id = $4) AND ($5 = '' OR key_id = $5) AND ($6 = '' OR user_id = $6) \
             GROUP BY ",
            $group
        )
    };
}

impl UsageGrouping {
    /// The aggregate query for this grouping.
    fn aggregate_sql(self) -> &'static str {
        match self {
            Self::Model => usage_aggregate_sql!("route"),
            Self::Key => usage_aggregate_sql!("key_id"),
            Self::Project => usage_aggregate_sql!("project_id"),
            // The first second of the row's UTC day.
            Self::Day => usage_aggregate_sql!("(occurred_at / 86400) * 86400"),
        }
    }
}

/// Which rows an aggregate covers. The org is always fixed by the caller's
/// rights; the rest narrows it.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub org_id: String,
    pub project_id: Option<String>,
    pub key_id: Option<String>,
    /// Only this user's rows (members who do not manage the org).
    pub user_id: Option<String>,
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// The group's value; `None` for rows without one (no key, no project).
    pub group: Option<String>,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    /// Requests whose tokens Switchyard counted (see [`UsageSource::Estimated`]).
    pub estimated_requests: i64,
}

impl Db {
    /// Writes a batch in one transaction.
    pub async fn usage_insert(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut chunks = rows.chunks_exact(USAGE_CHUNK);
        for chunk in &mut chunks {
            let insert = chunk.iter().fold(sqlx::query(INSERT_USAGE_CHUNK), bind_usage);
            insert.execute(&mut *tx).await?;
        }
        for row in chunks.remainder() {
            bind_usage(sqlx::query(INSERT_USAGE_ONE), row).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Everything a key has spent, in micro-USD.
    pub async fn usage_spent_by_key(&self, key_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent FROM usage_records WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("spent")?)
    }

    /// What an org (or, with `user_id`, one member of it) spent since `since`.
    pub async fn usage_spent_in_org_since(
        &self,
        org_id: &str,
        user_id: Option<&str>,
        since: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent FROM usage_records \
             WHERE org_id = $1 AND occurred_at >= $2 AND ($3 IS NULL OR user_id = $3)",
        )
        .bind(org_id)
        .bind(since)
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("spent")?)
    }

    /// Sums per group over the filter's rows, in no particular order (the
    /// caller sorts: the engines disagree on where `NULL` goes).
    pub async fn usage_aggregate(
        &self,
        filter: &UsageFilter,
        grouping: UsageGrouping,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        // Every value is bound. An absent filter is bound as '' (ids are never
        // empty), as in `projects_visible_to`.
        let rows = sqlx::query(grouping.aggregate_sql())
            .bind(&filter.org_id)
            .bind(filter.from)
            .bind(filter.to)
            .bind(filter.project_id.as_deref().unwrap_or(""))
            .bind(filter.key_id.as_deref().unwrap_or(""))
            .bind(filter.user_id.as_deref().unwrap_or(""))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UsageBucket {
                    group: row.try_get("grp")?,
                    requests: row.try_get("requests")?,
                    prompt_tokens: row.try_get("prompt_tokens")?,
                    completion_tokens: row.try_get("completion_tokens")?,
                    cost_micros: row.try_get("cost_micros")?,
                    estimated_requests: row.try_get("estimated")?,
                })
            })
            .collect()
    }
}

/// The insert of the usage rows `$values` holds the placeholders of, each
/// row's columns in the order [`bind_usage`] binds them.
macro_rules! insert_usage {
    ($values:literal) => {
        concat!(
            "INSERT INTO usage_records (id, occurred_at, org_id, project_id, user_id, key_id, route, provider, \
             upstream_model, prompt_tokens, completion_tokens, cost_micros, latency_ms, status, usage_source, run_id) \
             VALUES ",
            $values
        )
    };
}

/// A batch is written [`USAGE_CHUNK`] rows a statement, the rest one by one.
const USAGE_CHUNK: usize = 8;
const INSERT_USAGE_ONE: &str =
    insert_usage!("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)");
const INSERT_USAGE_CHUNK: &str = insert_usage!(
    "\
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16), \
     ($17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32), \
     ($33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, $47, $48), \
     ($49, $50, $51, $52, $53, $54, $55, $56, $57, $58, $59, $60, $61, $62, $63, $64), \
     ($65, $66, $67, $68, $69, $70, $71, $72, $73, $74, $75, $76, $77, $78, $79, $80), \
     ($81, $82, $83, $84, $85, $86, $87, $88, $89, $90, $91, $92, $93, $94, $95, $96), \
     ($97, $98, $99, $100, $101, $102, $103, $104, $105, $106, $107, $108, $109, $110, $111, $112), \
     ($113, $114, $115, $116, $117, $118, $119, $120, $121, $122, $123, $124, $125, $126, $127, $128)"
);

fn bind_usage<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    row: &'q UsageRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&row.id)
        .bind(row.occurred_at)
        .bind(&row.org_id)
        .bind(&row.project_id)
        .bind(&row.user_id)
        .bind(&row.key_id)
        .bind(&row.route)
        .bind(&row.provider)
        .bind(&row.upstream_model)
        .bind(row.prompt_tokens)
        .bind(row.completion_tokens)
        .bind(row.cost_micros)
        .bind(row.latency_ms)
        .bind(row.status)
        .bind(row.usage_source.as_str())
        .bind(&row.run_id)
}
