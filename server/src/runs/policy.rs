//! `[policies.<route>]`: the operator's rules for the runs of a route —
//! which tools they may offer, which calls and answers wait for an
//! approver, text that blocks a run, and ceilings on steps and cost.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use switchyard_providers::price::parse_usd_micros;

use crate::runs::model::RunFailure;

/// One route's policy, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The only tools (server or client, by name) a run may offer; absent,
    /// any. A run naming another is `blocked`.
    pub allowed_tools: Option<Vec<String>>,
    /// Server tools whose every call waits for an approver (`paused`).
    pub approval_required_tools: Vec<String>,
    /// The final answer waits for an approver before the run completes.
    pub approve_output: bool,
    /// The most steps a run may take; a run asking for more gets this many.
    pub max_steps: Option<u32>,
    /// The most a run's model calls may cost, in USD (`"0.50"`); a run asking
    /// for more gets this much.
    pub max_cost_usd: Option<String>,
    /// Regular expressions; a run whose input or final answer matches one
    /// is `blocked`, naming the rule.
    pub blocked_patterns: Vec<String>,
    /// Approvers of every run of the route, by email: those who are members
    /// of the run's organization join the approvers the run names.
    pub approvers: Vec<String>,
}

/// A policy the server cannot use.
#[derive(Debug, thiserror::Error)]
#[error("policies.{route}.{key}: {reason}")]
pub struct InvalidPolicy {
    pub route: String,
    pub key: &'static str,
    pub reason: String,
}

/// A route's policy, checked and with its patterns compiled.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allowed_tools: Option<Vec<String>>,
    pub approval_required_tools: Vec<String>,
    pub approve_output: bool,
    pub max_steps: Option<u32>,
    pub max_cost_micros: Option<i64>,
    blocked_patterns: Vec<Regex>,
    /// Emails, lowercased.
    pub approvers: Vec<String>,
}

/// Every route's policy; a route without one has the empty policy.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    by_route: BTreeMap<String, Policy>,
    none: Policy,
}

impl Policies {
    pub fn from_config(configured: &BTreeMap<String, PolicyConfig>) -> Result<Self, InvalidPolicy> {
        let by_route = configured
            .iter()
            .map(|(route, config)| Ok((route.clone(), Policy::from_config(route, config)?)))
            .collect::<Result<_, InvalidPolicy>>()?;
        Ok(Self { by_route, none: Policy::default() })
    }

    pub fn of(&self, route: &str) -> &Policy {
        self.by_route.get(route).unwrap_or(&self.none)
    }

    /// The routes that have a policy.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.by_route.keys().map(String::as_str)
    }
}

/// What a run is checked against when it is created: the text it starts
/// from and the tools it offers.
#[derive(Debug, Clone, Copy)]
pub struct RunInput<'a> {
    pub texts: &'a [&'a str],
    pub tools: &'a [&'a str],
}

impl Policy {
    fn from_config(route: &str, config: &PolicyConfig) -> Result<Self, InvalidPolicy> {
        let invalid = |key, reason: String| InvalidPolicy { route: route.to_owned(), key, reason };
        if let Some(steps) = config.max_steps.filter(|steps| !(1..=crate::runs::MAX_STEPS).contains(steps)) {
            return Err(invalid("max_steps", format!("{steps} is not 1 to {}", crate::runs::MAX_STEPS)));
        }
        let max_cost_micros = match &config.max_cost_usd {
            None => None,
            Some(text) => match parse_usd_micros(text) {
                Some(micros) if micros > 0 => Some(micros),
                _ => return Err(invalid("max_cost_usd", format!("{text:?} is not a positive USD amount"))),
            },
        };
        let blocked_patterns = config
            .blocked_patterns
            .iter()
            .enumerate()
            .map(|(index, pattern)| {
                Regex::new(pattern).map_err(|err| invalid("blocked_patterns", format!("[{index}]: {err}")))
            })
            .collect::<Result<_, _>>()?;
        let approvers = config
            .approvers
            .iter()
            .map(|email| match email.trim() {
                address if address.contains('@') => Ok(address.to_lowercase()),
                other => Err(invalid("approvers", format!("{other:?} is not an email address"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed_tools: config.allowed_tools.clone(),
            approval_required_tools: config.approval_required_tools.clone(),
            approve_output: config.approve_output,
            max_steps: config.max_steps,
            max_cost_micros,
            blocked_patterns,
            approvers,
        })
    }

    /// Why a new run is refused, if it is.
    pub fn refuses(&self, route: &str, input: RunInput<'_>) -> Option<RunFailure> {
        if let Some(allowed) = &self.allowed_tools {
            if let Some(tool) = input.tools.iter().find(|tool| !allowed.iter().any(|a| a == *tool)) {
                return Some(RunFailure::Blocked {
                    rule: format!("policies.{route}.allowed_tools"),
                    reason: format!("the tool {tool:?} is not allowed on this route"),
                });
            }
        }
        input.texts.iter().find_map(|text| self.blocks(route, "input", text))
    }

    /// Whether a tool may be called on this route.
    pub fn allows_tool(&self, name: &str) -> bool {
        self.allowed_tools.as_ref().is_none_or(|allowed| allowed.iter().any(|a| a == name))
    }

    /// Whether a call of this tool waits for an approver.
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.approval_required_tools.iter().any(|name| name == tool)
    }

    /// The first blocked pattern `text` matches, as a failure; `what` says
    /// which text it was (`input`, `output`).
    pub fn blocks(&self, route: &str, what: &str, text: &str) -> Option<RunFailure> {
        self.blocked_patterns.iter().position(|pattern| pattern.is_match(text)).map(|index| {
            RunFailure::Blocked {
                rule: format!("policies.{route}.blocked_patterns[{index}]"),
                reason: format!("the run's {what} matches a blocked pattern"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(config: PolicyConfig) -> Policy {
        Policy::from_config("default", &config).expect("a valid policy")
    }

    #[test]
    fn patterns_tools_and_approvers_are_checked_when_loaded() {
        let bad_pattern = PolicyConfig { blocked_patterns: vec!["(".to_owned()], ..PolicyConfig::default() };
        let err = Policy::from_config("default", &bad_pattern).expect_err("a bad regex");
        assert_eq!(err.key, "blocked_patterns");
        let bad_email = PolicyConfig { approvers: vec!["nobody".to_owned()], ..PolicyConfig::default() };
        assert_eq!(Policy::from_config("default", &bad_email).expect_err("no @").key, "approvers");
        let steps = PolicyConfig { max_steps: Some(101), ..PolicyConfig::default() };
        assert_eq!(Policy::from_config("default", &steps).expect_err("too many").key, "max_steps");
        let cost = PolicyConfig { max_cost_usd: Some("free".to_owned()), ..PolicyConfig::default() };
        assert_eq!(Policy::from_config("default", &cost).expect_err("not USD").key, "max_cost_usd");
    }

    #[test]
    fn a_run_is_refused_naming_the_rule() {
        let strict = policy(PolicyConfig {
            allowed_tools: Some(vec!["calculate".to_owned()]),
            blocked_patterns: vec!["(?i)password".to_owned(), r"\b\d{16}\b".to_owned()],
            ..PolicyConfig::default()
        });
        let ok = RunInput { texts: &["what is 6 * 7?"], tools: &["calculate"] };
        assert_eq!(strict.refuses("default", ok), None);
        let tool = strict.refuses("default", RunInput { texts: &[], tools: &["current_time"] });
        assert!(
            matches!(&tool, Some(RunFailure::Blocked { rule, .. }) if rule == "policies.default.allowed_tools"),
            "{tool:?}"
        );
        let card =
            strict.refuses("default", RunInput { texts: &["hi", "card 4242424242424242"], tools: &[] });
        assert!(
            matches!(&card, Some(RunFailure::Blocked { rule, .. }) if rule == "policies.default.blocked_patterns[1]"),
            "{card:?}"
        );
        assert!(strict.blocks("default", "output", "my PassWord is").is_some());
        assert!(strict.allows_tool("calculate") && !strict.allows_tool("current_time"));
        assert!(Policy::default().allows_tool("anything"));
    }
}
