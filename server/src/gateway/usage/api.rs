//! `GET /v1/usage`: the model gateway's usage in an organization, summed per
//! model, key, project or day.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use switchyard_providers::price::format_usd_micros;

use crate::gateway::usage::UsageGrouping;
use crate::gateway::usage::service::{self, UsageQuery, UsageSums};
use crate::http::credential::AnyCredential;
use crate::http::{ApiTags, Ok200};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct UsageApi;

/// What a usage report sums by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum UsageGroupBy {
    /// The model name the client sent.
    Model,
    /// The API key (`null`: requests made with a session).
    Key,
    /// The project of the key (`null`: keys not narrowed to a project).
    Project,
    /// The UTC day, as `YYYY-MM-DD`.
    Day,
}

impl From<UsageGroupBy> for UsageGrouping {
    fn from(group_by: UsageGroupBy) -> Self {
        match group_by {
            UsageGroupBy::Model => Self::Model,
            UsageGroupBy::Key => Self::Key,
            UsageGroupBy::Project => Self::Project,
            UsageGroupBy::Day => Self::Day,
        }
    }
}

impl From<UsageGrouping> for UsageGroupBy {
    fn from(grouping: UsageGrouping) -> Self {
        match grouping {
            UsageGrouping::Model => Self::Model,
            UsageGrouping::Key => Self::Key,
            UsageGrouping::Project => Self::Project,
            UsageGrouping::Day => Self::Day,
        }
    }
}

/// The sums over one group of requests.
#[derive(Debug, Object)]
pub struct UsageGroup {
    /// The model name, key id, project id or day (`YYYY-MM-DD`); `null` for
    /// requests without a key or project.
    #[oai(nullable)]
    pub group: Option<String>,
    /// Requests the gateway admitted, failed ones included.
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// What they cost, in USD, as a decimal string.
    pub cost_usd: String,
    /// How many of the requests were counted by Switchyard's tokenizer
    /// because their provider reported no usage (the others carry the
    /// provider's own figures).
    pub estimated_requests: u64,
}

/// The sums over every group of a report.
#[derive(Debug, Object)]
pub struct UsageTotals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// In USD, as a decimal string.
    pub cost_usd: String,
    /// Requests counted by Switchyard's tokenizer (no usage from the provider).
    pub estimated_requests: u64,
}

/// Usage in an organization over a time range, summed per group.
#[derive(Debug, Object)]
pub struct UsageReport {
    /// Always `usage_report`.
    pub object: String,
    pub org_id: String,
    /// The start of the range, inclusive.
    pub from: DateTime<Utc>,
    /// The end of the range, exclusive.
    pub to: DateTime<Utc>,
    pub group_by: UsageGroupBy,
    /// One entry per group with usage, by group ascending (`null` last).
    pub data: Vec<UsageGroup>,
    pub totals: UsageTotals,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl From<UsageSums> for UsageTotals {
    fn from(sums: UsageSums) -> Self {
        Self {
            requests: count(sums.requests),
            prompt_tokens: count(sums.prompt_tokens),
            completion_tokens: count(sums.completion_tokens),
            total_tokens: count(sums.total_tokens()),
            cost_usd: format_usd_micros(sums.cost_micros),
            estimated_requests: count(sums.estimated_requests),
        }
    }
}

impl From<service::UsageGroup> for UsageGroup {
    fn from(group: service::UsageGroup) -> Self {
        let UsageTotals {
            requests,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            cost_usd,
            estimated_requests,
        } = group.sums.into();
        Self {
            group: group.group,
            requests,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            cost_usd,
            estimated_requests,
        }
    }
}

impl From<service::UsageReport> for UsageReport {
    fn from(report: service::UsageReport) -> Self {
        Self {
            object: "usage_report".to_owned(),
            org_id: report.org_id,
            from: report.from,
            to: report.to,
            group_by: report.group_by.into(),
            data: report.groups.into_iter().map(UsageGroup::from).collect(),
            totals: report.totals.into(),
        }
    }
}

operation_errors!(UsageGetError: 400, 401, 404, 422, 429);

#[OpenApi(tag = "ApiTags::Gateway")]
impl UsageApi {
    /// The gateway's usage in an organization, summed per group. Owners and
    /// admins see the whole organization; members and externals their own
    /// requests; an API key without the `admin` scope its own requests.
    #[oai(path = "/v1/usage", method = "get", operation_id = "usage_get")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument: poem-openapi has no query structs"
    )]
    async fn usage_get(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// The organization; required with a session, an API key's own by default.
        org_id: Query<Option<String>>,
        /// Only requests made with keys narrowed to this project.
        project_id: Query<Option<String>>,
        /// Only requests made with this API key.
        key_id: Query<Option<String>>,
        /// The start of the range, inclusive (default: 30 days before `to`).
        from: Query<Option<DateTime<Utc>>>,
        /// The end of the range, exclusive (default: now).
        to: Query<Option<DateTime<Utc>>>,
        /// What to sum by (default `day`).
        group_by: Query<Option<UsageGroupBy>>,
    ) -> Result<Ok200<UsageReport>, UsageGetError> {
        let principal = state.principal(&auth).await?;
        // Rows this replica has not written yet count at once; other
        // replicas write theirs within two seconds.
        if let Err(err) = state.meter.flush(&state.db).await {
            tracing::warn!(error = %err, "could not record gateway usage before a report; will retry");
        }
        let query = UsageQuery {
            org_id: org_id.0.as_deref(),
            project_id: project_id.0.as_deref(),
            key_id: key_id.0.as_deref(),
            from: from.0,
            to: to.0,
            group_by: group_by.0.unwrap_or(UsageGroupBy::Day).into(),
        };
        let report = service::usage_report(&state.db, &principal, query, state.clock.now_utc()).await?;
        Ok(Ok200::Ok(Json(report.into())))
    }
}
