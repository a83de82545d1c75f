//! Usage reports: what the model gateway recorded in an organization, summed
//! per model, key, project or UTC day over a time range.
//!
//! Who sees what: owners and admins see the whole org; members and externals
//! only their own requests. An API key acts as its owner only with the `admin`
//! scope; any other key sees only its own requests, and a key narrowed to a
//! project only that project's. Filters the caller asks for narrow that view
//! further; a `key_id` or `project_id` outside it (another org's, or one the
//! caller may not see) matches no rows rather than failing, so a report never
//! tells whether someone else's id exists. An org the caller is not in is 404.

use chrono::{DateTime, Duration, Utc};

use crate::db::Db;
use crate::gateway::usage::{UsageBucket, UsageFilter, UsageGrouping};
use crate::identity::{Role, caller_role, org_asked_for};
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::principal::{Principal, Scope, Via};

/// The range a report covers when `from` is not given: this many days before `to`.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// The longest range one report may cover.
pub const MAX_RANGE_DAYS: i64 = 366;

/// What the caller asked for.
#[derive(Debug, Clone, Copy)]
pub struct UsageQuery<'a> {
    /// Required with a session; an API key's own org when absent.
    pub org_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub key_id: Option<&'a str>,
    /// Inclusive; [`DEFAULT_RANGE_DAYS`] before `to` when absent.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive; now (rounded up to the second) when absent.
    pub to: Option<DateTime<Utc>>,
    pub group_by: UsageGrouping,
}

/// Sums over one group, or over all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageSums {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    /// Requests whose tokens Switchyard counted because the provider reported none.
    pub estimated_requests: i64,
}

impl UsageSums {
    fn of(bucket: &UsageBucket) -> Self {
        Self {
            requests: bucket.requests,
            prompt_tokens: bucket.prompt_tokens,
            completion_tokens: bucket.completion_tokens,
            cost_micros: bucket.cost_micros,
            estimated_requests: bucket.estimated_requests,
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            requests: self.requests.saturating_add(other.requests),
            prompt_tokens: self.prompt_tokens.saturating_add(other.prompt_tokens),
            completion_tokens: self.completion_tokens.saturating_add(other.completion_tokens),
            cost_micros: self.cost_micros.saturating_add(other.cost_micros),
            estimated_requests: self.estimated_requests.saturating_add(other.estimated_requests),
        }
    }

    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    /// The model name, key id, project id or `YYYY-MM-DD` day; `None` for
    /// requests without a key or project.
    pub group: Option<String>,
    pub sums: UsageSums,
}

#[derive(Debug, Clone)]
pub struct UsageReport {
    pub org_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: UsageGrouping,
    /// By group ascending; the group without a value last.
    pub groups: Vec<UsageGroup>,
    pub totals: UsageSums,
}

/// The caller's usage in an org, as far as they may see it.
pub async fn usage_report(
    db: &Db,
    principal: &Principal,
    query: UsageQuery<'_>,
    now: DateTime<Utc>,
) -> DomainResult<UsageReport> {
    let org_id = org_asked_for(principal, query.org_id)?;
    let role = caller_role(db, principal, org_id).await?;
    let (from, to) = range(query.from, query.to, now)?;
    let mut report = UsageReport {
        org_id: org_id.to_owned(),
        from,
        to,
        group_by: query.group_by,
        groups: Vec::new(),
        totals: UsageSums::default(),
    };
    let view = View::of(principal, role);
    let (Some(project_id), Some(key_id)) =
        (narrow(view.project_id, query.project_id), narrow(view.key_id, query.key_id))
    else {
        // A filter outside what the caller may see: nothing matches.
        return Ok(report);
    };
    let filter = UsageFilter {
        org_id: org_id.to_owned(),
        project_id: project_id.map(str::to_owned),
        key_id: key_id.map(str::to_owned),
        user_id: view.user_id.map(str::to_owned),
        from: from.timestamp(),
        to: seconds_up(to),
    };
    let buckets = db.usage_aggregate(&filter, query.group_by).await?;
    report.groups = buckets
        .iter()
        .map(|bucket| UsageGroup {
            group: bucket.group.as_deref().map(|group| label(query.group_by, group)),
            sums: UsageSums::of(bucket),
        })
        .collect();
    report.groups.sort_by(|a, b| (a.group.is_none(), &a.group).cmp(&(b.group.is_none(), &b.group)));
    report.totals = report.groups.iter().fold(UsageSums::default(), |sum, group| sum.add(group.sums));
    Ok(report)
}

/// The rows a caller may see in an org they belong to, beyond the org itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct View<'a> {
    user_id: Option<&'a str>,
    key_id: Option<&'a str>,
    project_id: Option<&'a str>,
}

impl<'a> View<'a> {
    fn of(principal: &'a Principal, role: Role) -> Self {
        let mut view = Self::default();
        if role > Role::Admin {
            view.user_id = Some(&principal.user_id);
        }
        if let Via::ApiKey { key_id, project_id, .. } = &principal.via {
            if principal.require_scope(Scope::Admin).is_err() {
                view.key_id = Some(key_id);
            }
            view.project_id = project_id.as_deref();
        }
        view
    }
}

/// Combines what the caller may see with what they asked for: `Some(filter)`
/// (`Some(None)` is no filter), or `None` when the two cannot both hold.
fn narrow<'a>(allowed: Option<&'a str>, asked: Option<&'a str>) -> Option<Option<&'a str>> {
    match (allowed, asked) {
        (Some(allowed), Some(asked)) if allowed != asked => None,
        (allowed, asked) => Some(asked.or(allowed)),
    }
}

/// The report's range: `to` defaults to now, rounded up to the whole second
/// so that this second's requests count; `from` to [`DEFAULT_RANGE_DAYS`]
/// before `to`.
fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DomainResult<(DateTime<Utc>, DateTime<Utc>)> {
    let to = to.unwrap_or_else(|| DateTime::from_timestamp(seconds_up(now), 0).unwrap_or(now));
    let from = match from {
        Some(from) => from,
        None => to.checked_sub_signed(Duration::days(DEFAULT_RANGE_DAYS)).unwrap_or(DateTime::UNIX_EPOCH),
    };
    if from >= to {
        return Err(DomainError::Invalid { param: "from", message: "must be before `to`".to_owned() });
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(DomainError::Invalid {
            param: "from",
            message: format!("must be at most {MAX_RANGE_DAYS} days before `to`"),
        });
    }
    Ok((from, to))
}

/// Rows are stamped in whole seconds: a row of second `s` is before `to`
/// exactly when `s` is before `to` rounded up.
fn seconds_up(at: DateTime<Utc>) -> i64 {
    let seconds = at.timestamp();
    if at.timestamp_subsec_nanos() > 0 { seconds.saturating_add(1) } else { seconds }
}

/// A stored group value as the report shows it: days as `YYYY-MM-DD`.
fn label(grouping: UsageGrouping, stored: &str) -> String {
    match grouping {
        UsageGrouping::Day => stored
            .parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .map_or_else(|| stored.to_owned(), |day| day.date_naive().format("%Y-%m-%d").to_string()),
        UsageGrouping::Model | UsageGrouping::Key | UsageGrouping::Project => stored.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::principal::KeyLimits;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap()
    }

    fn key(scopes: Vec<Scope>, project_id: Option<&str>) -> Principal {
        Principal {
            user_id: "usr_1".into(),
            via: Via::ApiKey {
                key_id: "key_1".into(),
                org_id: "org_1".into(),
                project_id: project_id.map(str::to_owned),
                scopes,
                limits: KeyLimits::default(),
            },
        }
    }

    #[test]
    fn the_range_defaults_to_thirty_days_up_to_now_rounded_up() -> DomainResult<()> {
        let now = at("2026-11-23T10:04:00.250Z");
        let (from, to) = range(None, None, now)?;
        assert_eq!((from, to), (at("2026-10-24T10:04:01Z"), at("2026-11-23T10:04:01Z")));
        let (from, _) = range(None, Some(at("2026-01-31T00:00:00Z")), now)?;
        assert_eq!(from, at("2026-01-01T00:00:00Z"));
        Ok(())
    }

    #[test]
    fn the_range_must_be_ordered_and_at_most_366_days() -> DomainResult<()> {
        let now = at("2026-11-23T10:04:00Z");
        let to = Some(at("2026-11-01T00:00:00Z"));
        for from in ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2025-10-30T23:59:59Z"] {
            assert!(
                matches!(range(Some(at(from)), to, now), Err(DomainError::Invalid { param: "from", .. })),
                "{from}"
            );
        }
        range(Some(at("2025-10-31T00:00:00Z")), to, now)?;
        Ok(())
    }

    #[test]
    fn rows_of_the_last_partial_second_count() {
        assert_eq!(seconds_up(at("2026-11-23T10:04:00Z")), at("2026-11-23T10:04:00Z").timestamp());
        assert_eq!(seconds_up(at("2026-11-23T10:04:00.001Z")), at("2026-11-23T10:04:01Z").timestamp());
    }

    #[test]
    fn days_are_labelled_as_dates() {
        let day = at("2026-11-23T00:00:00Z").timestamp().to_string();
        assert_eq!(label(UsageGrouping::Day, &day), "2026-11-23");
        assert_eq!(label(UsageGrouping::Model, "default"), "default");
        assert_eq!(label(UsageGrouping::Day, "0"), "1970-01-01");
    }

    #[test]
    fn keys_without_the_admin_scope_see_only_themselves() {
        let chat = key(vec![Scope::Chat], None);
        assert_eq!(View::of(&chat, Role::Owner), View { key_id: Some("key_1"), ..View::default() });
        let admin = key(vec![Scope::Admin], Some("prj_1"));
        assert_eq!(View::of(&admin, Role::Owner), View { project_id: Some("prj_1"), ..View::default() });
        assert_eq!(
            View::of(&admin, Role::Member),
            View { user_id: Some("usr_1"), project_id: Some("prj_1"), ..View::default() }
        );
        let session = Principal { user_id: "usr_1".into(), via: Via::Session { session_id: "ses_1".into() } };
        assert_eq!(View::of(&session, Role::Admin), View::default());
        assert_eq!(View::of(&session, Role::External), View { user_id: Some("usr_1"), ..View::default() });
    }

    #[test]
    fn a_filter_outside_the_view_matches_nothing() {
        assert_eq!(narrow(None, None), Some(None));
        assert_eq!(narrow(None, Some("key_2")), Some(Some("key_2")));
        assert_eq!(narrow(Some("key_1"), None), Some(Some("key_1")));
        assert_eq!(narrow(Some("key_1"), Some("key_1")), Some(Some("key_1")));
        assert_eq!(narrow(Some("key_1"), Some("key_2")), None);
    }
}
