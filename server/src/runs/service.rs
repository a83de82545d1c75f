//! The operations of the runs API: create a run (within its route's
//! policy), read and list runs, answer client tool calls, cancel; and who
//! may see which run (its creator, its approvers, the owners and admins of
//! its org, and those its session is shared with; 404 for anyone else) and
//! act on it (all of them but those who may only read its session).

use serde_json::{Map, Value};
use switchyard_providers::price::parse_usd_micros;
use switchyard_providers::wire::{MAX_CONTENT_CHARS, MAX_MESSAGES};

use crate::audit::Stamped;
use crate::gateway::Caller;
use crate::identity::{Role, caller_role};
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::page::Page;
use crate::kernel::principal::{Principal, Scope, Via};
use crate::runs::Runs;
use crate::runs::model::{
    ClientTool, Executor, InputMessage, Run, RunSpec, RunStatus, Step, StepRecord, ToolCall, ToolStep,
};
use crate::runs::policy::{Policy, RunInput};
use crate::runs::sessions::Standing;
use crate::runs::store::{Answered, Inserted, RunFilter, Start};
use crate::runs::tools::compile;

/// Steps a run may take when it names no `max_steps`, and the most it may name.
pub const DEFAULT_MAX_STEPS: u32 = 10;
pub const MAX_STEPS: u32 = 100;
/// Largest `metadata`, as JSON text.
pub const MAX_METADATA_BYTES: usize = 10 * 1024;
/// Most tools one run may offer.
pub const MAX_TOOLS: usize = 64;
/// Longest tool description.
pub const MAX_TOOL_DESCRIPTION_CHARS: usize = 4_096;
/// The route a run uses when it names none.
pub const DEFAULT_ROUTE: &str = "default";

/// A tool a run offers the model.
#[derive(Debug, Clone)]
pub enum RunTool {
    /// A server tool, by name.
    Server(String),
    /// A tool the caller executes.
    Client(ClientTool),
}

/// What `POST /v1/runs` asks for.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub model: Option<String>,
    pub instructions: Option<String>,
    pub messages: Vec<InputMessage>,
    pub tools: Vec<RunTool>,
    pub max_steps: Option<u32>,
    pub max_cost_usd: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub background: bool,
    /// Members (user ids or emails) who decide when the run pauses.
    pub approvers: Vec<String>,
    /// The session the run continues, with `message` instead of `messages`.
    pub session_id: Option<String>,
    pub message: Option<InputMessage>,
}

/// What a list of runs asks for, besides what the caller may see.
#[derive(Debug, Clone, Default)]
pub struct RunsWanted {
    pub status: Option<RunStatus>,
    /// Only runs this user or API key started.
    pub principal: Option<String>,
    /// Only runs created at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only runs of this session.
    pub session_id: Option<String>,
}

/// A client tool's result.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub tool_call_id: String,
    pub output: String,
}

/// How long an operation that sets a run going waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until the run stops or waits again, to answer with where it ended up
    /// (a foreground HTTP request).
    UntilStopped,
    /// Only until what was asked is stored; a driver takes the run on while
    /// the caller follows its events (a WebSocket, an event stream).
    UntilStored,
}

pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::Invalid { param, message: message.into() }
}

impl Runs {
    /// Creates a run for the caller, metered in its org (a session names it
    /// as `org`). A foreground run is driven before this returns, until it
    /// completes, fails or waits, unless `wait` says not to: then it is
    /// driven by a task of this server, and this returns it `running`; a
    /// background one is left `pending` for a driver.
    pub async fn create(
        &self,
        principal: &Principal,
        org: Option<&str>,
        mut new: NewRun,
        wait: Wait,
    ) -> DomainResult<Run> {
        principal.require_scope(Scope::Runs)?;
        let route = new.model.clone().unwrap_or_else(|| DEFAULT_ROUTE.to_owned());
        if self.gateway().route(&route).is_none() || !may_use_model(principal, &route) {
            return Err(DomainError::ModelNotFound(route));
        }
        let caller = Caller::resolve(self.db(), principal, org).await?;
        let policy = self.inner.policies.of(&route);
        let approvers = self.approvers(&caller.org_id, &new.approvers, policy).await?;
        let (new, session_id) = match (new.session_id.take(), new.message.take()) {
            (None, None) => (new, None),
            (Some(session_id), Some(message)) if new.messages.is_empty() => {
                // The new message is checked like any; the history was when it was written.
                new.messages = vec![message];
                (new, Some(session_id))
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "messages",
                    "a run in a session starts from the session's history: send only the new message, as message",
                ));
            }
            (Some(_), None) => {
                return Err(invalid("message", "a run in a session sends its new message as message"));
            }
            (None, Some(_)) => {
                return Err(invalid("session_id", "message continues a session: name it with session_id"));
            }
        };
        let mut spec = self.spec(new, policy)?;
        spec.approvers = approvers;
        if let Some(session_id) = &session_id {
            // The run starts from the session's history, then its one checked message.
            spec.session_message = spec.messages.last().cloned();
            let history = self.session_history_for_run(principal, session_id, &caller.org_id).await?;
            spec.messages.splice(0..0, history);
        }
        let refusal = policy.refuses(&route, policy_input(&spec).as_input());
        let now = self.clock().now();
        let run = Run {
            id: new_id("run"),
            org_id: caller.org_id,
            user_id: caller.user_id,
            key_id: caller.key_id,
            project_id: caller.project_id,
            session_id,
            route,
            status: RunStatus::Pending,
            spec,
            step_count: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_micros: 0,
            output: None,
            pending: Vec::new(),
            pending_approval: None,
            tool_in_flight: None,
            failure: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            steps: Vec::new(),
        };
        let created = self.created_event(&run, &RequestContext::local(self.clock()));
        if let Some(failure) = &refusal {
            let finished = self.finished_event(&run, RunStatus::Blocked, Some(failure));
            self.insert(&run, Start::Blocked(failure), &[created, finished]).await?;
            self.metrics().finished(&run.route, RunStatus::Blocked.as_str());
            return self.read(&run.id).await;
        }
        if run.spec.background {
            self.insert(&run, Start::Pending, &[created]).await?;
            self.ring(&run.id);
            self.spawn_drive(run.id.clone());
            return Ok(run);
        }
        let start = Start::Claimed { owner: self.owner(), expires_at: now + self.lease_secs() };
        self.insert(&run, start, &[created]).await?;
        let id = run.id.clone();
        let run = Run { status: RunStatus::Running, started_at: Some(now), ..run };
        match wait {
            Wait::UntilStopped => {
                self.drive_new_to_stop(run).await?;
                self.read(&id).await
            }
            Wait::UntilStored => {
                self.spawn_drive_new(run.clone());
                Ok(run)
            }
        }
    }

    /// Stores a new run with the audit events of its start; a session's
    /// second run that would not be over is refused.
    async fn insert(&self, run: &Run, start: Start<'_>, audit: &[Stamped]) -> DomainResult<()> {
        match self.db().run_insert(run, start, audit).await? {
            Inserted::Stored => {
                self.metrics().started(&run.route);
                Ok(())
            }
            Inserted::SessionGone => Err(DomainError::NotFound(Resource::RunSession)),
            Inserted::SessionBusy => Err(DomainError::SessionBusy),
        }
    }

    /// Checks what a new run asks for and turns it into what it keeps,
    /// within the ceilings of its route's policy.
    fn spec(&self, new: NewRun, policy: &Policy) -> DomainResult<RunSpec> {
        if new.messages.is_empty() || new.messages.len() > MAX_MESSAGES {
            return Err(invalid("messages", format!("a run starts from 1 to {MAX_MESSAGES} messages")));
        }
        for (index, message) in new.messages.iter().enumerate() {
            if !matches!(message.role.as_str(), "system" | "developer" | "user" | "assistant") {
                return Err(invalid(
                    "messages",
                    format!("messages[{index}].role must be system, developer, user or assistant"),
                ));
            }
            if message.content.chars().count() > MAX_CONTENT_CHARS {
                return Err(invalid(
                    "messages",
                    format!("messages[{index}].content is longer than {MAX_CONTENT_CHARS} characters"),
                ));
            }
        }
        if new.instructions.as_ref().is_some_and(|text| text.chars().count() > MAX_CONTENT_CHARS) {
            return Err(invalid("instructions", format!("is longer than {MAX_CONTENT_CHARS} characters")));
        }
        let max_steps = new.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
        if !(1..=MAX_STEPS).contains(&max_steps) {
            return Err(invalid("max_steps", format!("must be 1 to {MAX_STEPS}")));
        }
        let max_steps = policy.max_steps.map_or(max_steps, |ceiling| max_steps.min(ceiling));
        let max_cost_micros = match &new.max_cost_usd {
            None => None,
            Some(text) => match parse_usd_micros(text) {
                Some(micros) if micros > 0 => Some(micros),
                _ => return Err(invalid("max_cost_usd", "must be a positive USD amount such as \"0.50\"")),
            },
        };
        let max_cost_micros = match (max_cost_micros, policy.max_cost_micros) {
            (Some(asked), Some(ceiling)) => Some(asked.min(ceiling)),
            (asked, ceiling) => asked.or(ceiling),
        };
        if let Some(metadata) = &new.metadata {
            let size = serde_json::to_string(metadata).map(|text| text.len()).unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(invalid(
                    "metadata",
                    format!("is larger than {MAX_METADATA_BYTES} bytes as JSON"),
                ));
            }
        }
        let (server_tools, client_tools) = self.tool_set(new.tools)?;
        Ok(RunSpec {
            instructions: new.instructions,
            messages: new.messages,
            server_tools,
            client_tools,
            max_steps,
            max_cost_micros,
            metadata: new.metadata,
            background: new.background,
            approvers: Vec::new(),
            session_message: None,
        })
    }

    /// The server tools by name and the client tools declared, each name once.
    fn tool_set(&self, tools: Vec<RunTool>) -> DomainResult<(Vec<String>, Vec<ClientTool>)> {
        if tools.len() > MAX_TOOLS {
            return Err(invalid("tools", format!("a run offers at most {MAX_TOOLS} tools")));
        }
        let mut names = std::collections::HashSet::new();
        let (mut server, mut client) = (Vec::new(), Vec::new());
        for tool in tools {
            let name = match &tool {
                RunTool::Server(name) => name.clone(),
                RunTool::Client(declared) => declared.name.clone(),
            };
            if !names.insert(name.clone()) {
                return Err(invalid("tools", format!("the tool {name:?} is named twice")));
            }
            match tool {
                RunTool::Server(name) if self.tools().contains(&name) => server.push(name),
                RunTool::Server(name) => {
                    let known: Vec<&str> = self.tools().names().collect();
                    return Err(invalid(
                        "tools",
                        format!("there is no server tool {name:?}; server tools: {}", known.join(", ")),
                    ));
                }
                RunTool::Client(declared) => {
                    check_client_tool(&declared)?;
                    if self.tools().contains(&declared.name) {
                        return Err(invalid(
                            "tools",
                            format!(
                                "{:?} is a server tool; name it as a string, or give yours another name",
                                declared.name
                            ),
                        ));
                    }
                    client.push(declared);
                }
            }
        }
        Ok((server, client))
    }

    /// The run, if the caller may see it.
    pub async fn get(&self, principal: &Principal, id: &str) -> DomainResult<Run> {
        self.run_for(principal, id, Standing::Read).await
    }

    /// The run, if the caller stands at least `needed` towards it: 404 when
    /// they do not see it, 403 `session.read_only` when they only read its
    /// session.
    async fn run_for(&self, principal: &Principal, id: &str, needed: Standing) -> DomainResult<Run> {
        principal.require_scope(Scope::Runs)?;
        let run = self.db().run_with_steps(id).await?.ok_or(DomainError::NotFound(Resource::Run))?;
        match self.run_standing(principal, &run).await? {
            Standing::Unseen => Err(DomainError::NotFound(Resource::Run)),
            standing if standing >= needed => Ok(run),
            _ => Err(DomainError::SessionReadOnly),
        }
    }

    /// The runs of the caller's org that the caller may see, oldest first:
    /// their own, or every run for owners and admins; of a session shared
    /// with them, every run of it.
    pub async fn list(
        &self,
        principal: &Principal,
        org: Option<&str>,
        wanted: &RunsWanted,
        after: Option<&str>,
        limit: i64,
    ) -> DomainResult<Page<Run>> {
        let Listing { org_id, mut only_user, project } = self.listing(principal, org).await?;
        if let (Some(session_id), Some(_)) = (&wanted.session_id, only_user) {
            // Those a session is shared with see all its runs.
            if self.session_standing_by_id(principal, session_id, org_id).await? >= Standing::Read {
                only_user = None;
            }
        }
        let filter = RunFilter {
            org_id,
            user_id: only_user,
            project_id: project,
            status: wanted.status,
            principal: wanted.principal.as_deref(),
            since: wanted.since,
            session_id: wanted.session_id.as_deref(),
        };
        let rows = self.db().runs_in_org(&filter, after, limit + 1).await?;
        Ok(Page::from_rows(rows, limit, |run| &run.id))
    }

    /// What of its org a caller lists (runs, sessions): the org it acts
    /// in; unless an owner or admin there, only its own; for a key narrowed
    /// to a project, only that project's.
    pub(super) async fn listing<'a>(
        &self,
        principal: &'a Principal,
        org: Option<&'a str>,
    ) -> DomainResult<Listing<'a>> {
        principal.require_scope(Scope::Runs)?;
        let org_id = match (principal.key_org(), org) {
            (Some(own), Some(named)) if own != named => {
                return Err(DomainError::NotFound(Resource::Organization));
            }
            (Some(own), _) => own,
            (None, Some(named)) => named,
            (None, None) => return Err(DomainError::OrgRequired),
        };
        let role = caller_role(self.db(), principal, org_id).await?;
        let only_user = (role > Role::Admin).then_some(principal.user_id.as_str());
        let project = match &principal.via {
            Via::ApiKey { project_id, .. } => project_id.as_deref(),
            Via::Session { .. } => None,
        };
        Ok(Listing { org_id, only_user, project })
    }

    /// Answers client tool calls of a run waiting for them. Calls may be
    /// answered a few at a time; once none is left the run goes on, and,
    /// like a foreground run, this returns when it stops or waits again
    /// (unless `wait` says not to).
    pub async fn submit_tool_outputs(
        &self,
        principal: &Principal,
        id: &str,
        outputs: Vec<ToolOutput>,
        wait: Wait,
    ) -> DomainResult<Run> {
        let run = self.run_for(principal, id, Standing::Continue).await?;
        if outputs.is_empty() {
            return Err(invalid("tool_outputs", "name at least one tool call's output"));
        }
        if run.status != RunStatus::RequiresAction {
            return Err(DomainError::RunNotAwaitingToolOutputs(run.status.as_str()));
        }
        let mut answering: Vec<&ToolCall> = Vec::new();
        for output in &outputs {
            if output.output.chars().count() > MAX_CONTENT_CHARS {
                return Err(invalid(
                    "tool_outputs",
                    format!("an output is longer than {MAX_CONTENT_CHARS} characters"),
                ));
            }
            if answering.iter().any(|call| call.id == output.tool_call_id) {
                return Err(invalid("tool_outputs", format!("{:?} is answered twice", output.tool_call_id)));
            }
            match run.pending.iter().find(|call| call.id == output.tool_call_id) {
                Some(call) => answering.push(call),
                None if answered(&run, &output.tool_call_id) => {
                    return Err(DomainError::ToolCallAlreadyAnswered(output.tool_call_id.clone()));
                }
                None => return Err(DomainError::UnknownToolCall(output.tool_call_id.clone())),
            }
        }
        let now = self.clock().now();
        let steps: Vec<StepRecord> = outputs
            .iter()
            .zip(&answering)
            .enumerate()
            .map(|(offset, (output, call))| StepRecord {
                index: run.step_count + u32::try_from(offset).unwrap_or(u32::MAX),
                created_at: now,
                step: Step::Tool(ToolStep {
                    tool_call_id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    output: output.output.clone(),
                    is_error: false,
                    executor: Executor::Client,
                }),
            })
            .collect();
        let still_pending: Vec<ToolCall> =
            run.pending.iter().filter(|call| !answering.iter().any(|a| a.id == call.id)).cloned().collect();
        let lease = (self.owner(), now + self.lease_secs());
        let audit: Vec<Stamped> = steps
            .iter()
            .filter_map(|record| match &record.step {
                Step::Tool(tool) => Some(self.tool_called_event(&run, tool)),
                Step::Model(_) | Step::Approval(_) => None,
            })
            .collect();
        let journal = (steps.as_slice(), audit.as_slice());
        let outcome =
            self.db().run_answer_tool_calls(id, run.step_count, journal, &still_pending, lease, now).await?;
        if outcome != Answered::Conflict {
            self.ring(id);
            for _ in &audit {
                self.metrics().step("tool");
            }
        }
        match outcome {
            Answered::StillWaiting => {}
            Answered::Resumed { epoch } => self.drive_claimed_as(id, epoch, wait).await?,
            Answered::Conflict => {
                // Someone else answered or cancelled meanwhile: say which.
                let now_run = self.read(id).await?;
                if let Some(output) = outputs.iter().find(|output| answered(&now_run, &output.tool_call_id)) {
                    return Err(DomainError::ToolCallAlreadyAnswered(output.tool_call_id.clone()));
                }
                return Err(DomainError::RunNotAwaitingToolOutputs(now_run.status.as_str()));
            }
        }
        self.read(id).await
    }

    /// Cancels a run that has not ended; a cancelled run is returned as it
    /// is, so cancelling twice is harmless.
    pub async fn cancel(&self, principal: &Principal, id: &str) -> DomainResult<Run> {
        let run = self.run_for(principal, id, Standing::Continue).await?;
        if run.status == RunStatus::Cancelled {
            return Ok(run);
        }
        let finished = self.finished_event(&run, RunStatus::Cancelled, None);
        if self.db().run_cancel(id, &finished, self.clock().now()).await? {
            self.ring(id);
            self.metrics().finished(&run.route, RunStatus::Cancelled.as_str());
        } else {
            let now_run = self.read(id).await?;
            if now_run.status != RunStatus::Cancelled {
                return Err(DomainError::RunFinished(now_run.status.as_str()));
            }
        }
        self.read(id).await
    }

    /// Whether the caller may see the run.
    pub(super) async fn may_see(&self, principal: &Principal, run: &Run) -> DomainResult<bool> {
        Ok(self.run_standing(principal, run).await? >= Standing::Read)
    }

    /// What the caller may do with the run: it acts in the run's org (a key
    /// narrowed to a project, in its project), and created the run, is one
    /// of its approvers, or is an owner or admin there ([`Standing::Manage`]);
    /// or else its session is shared with them (their standing there).
    async fn run_standing(&self, principal: &Principal, run: &Run) -> DomainResult<Standing> {
        let owned =
            Owned { org_id: &run.org_id, project_id: run.project_id.as_deref(), user_id: &run.user_id };
        match self.relation_to(principal, owned).await? {
            Relation::Outsider => Ok(Standing::Unseen),
            Relation::Manager => Ok(Standing::Manage),
            Relation::Member if run.spec.approvers.contains(&principal.user_id) => Ok(Standing::Manage),
            Relation::Member => match &run.session_id {
                Some(session_id) => self.session_standing_by_id(principal, session_id, &run.org_id).await,
                None => Ok(Standing::Unseen),
            },
        }
    }

    /// Where the caller stands towards what a member created in an org (a
    /// run, a session): outside it unless it acts in that org (a key
    /// narrowed to a project, in its project) and is a member there; its
    /// manager as its creator or an owner or admin there.
    pub(super) async fn relation_to(
        &self,
        principal: &Principal,
        owned: Owned<'_>,
    ) -> DomainResult<Relation> {
        if let Via::ApiKey { org_id, project_id, .. } = &principal.via {
            if org_id != owned.org_id || project_id.as_deref().is_some_and(|p| owned.project_id != Some(p)) {
                return Ok(Relation::Outsider);
            }
        }
        match caller_role(self.db(), principal, owned.org_id).await {
            Ok(role) if owned.user_id == principal.user_id || role <= Role::Admin => Ok(Relation::Manager),
            Ok(_) => Ok(Relation::Member),
            Err(DomainError::NotFound(_)) => Ok(Relation::Outsider),
            Err(err) => Err(err),
        }
    }

    pub(super) async fn read(&self, id: &str) -> DomainResult<Run> {
        self.db().run_with_steps(id).await?.ok_or(DomainError::NotFound(Resource::Run))
    }

    /// Drives a claimed run in a task of its own, so a client that goes
    /// away does not stop it, and waits for it to stop or wait.
    pub(super) async fn drive_to_stop(&self, id: &str, epoch: i64) -> DomainResult<()> {
        let runs = self.clone();
        let id = id.to_owned();
        joined(self.inner.drivers.spawn(async move { runs.drive_claimed(&id, epoch).await })).await
    }

    /// Drives a run this server just claimed under `epoch`: here, or in a
    /// task of its own when the caller does not wait for it.
    pub(super) async fn drive_claimed_as(&self, id: &str, epoch: i64, wait: Wait) -> DomainResult<()> {
        match wait {
            Wait::UntilStopped => self.drive_to_stop(id, epoch).await,
            Wait::UntilStored => {
                self.spawn_drive_claimed(id.to_owned(), epoch);
                Ok(())
            }
        }
    }

    /// The same for a foreground run just stored as `run` (claimed under
    /// epoch 1, nothing journaled), which need not be read back first.
    async fn drive_new_to_stop(&self, run: Run) -> DomainResult<()> {
        let runs = self.clone();
        joined(self.inner.drivers.spawn(async move { runs.drive_loaded(run, 1).await })).await
    }

    /// Drives the run in the background, if no other server takes it first.
    pub(crate) fn spawn_drive(&self, id: String) {
        let runs = self.clone();
        self.inner.drivers.spawn(async move { driven(&id, runs.drive(&id).await) });
    }

    /// Drives in the background a run just stored as `run`, claimed under
    /// epoch 1.
    fn spawn_drive_new(&self, run: Run) {
        let runs = self.clone();
        let id = run.id.clone();
        self.inner.drivers.spawn(async move { driven(&id, runs.drive_loaded(run, 1).await) });
    }

    /// Drives in the background a run this server claimed under `epoch`.
    pub(crate) fn spawn_drive_claimed(&self, id: String, epoch: i64) {
        let runs = self.clone();
        self.inner.drivers.spawn(async move { driven(&id, runs.drive_claimed(&id, epoch).await) });
    }
}

/// Logs a background driver that failed; the run resumes once its lease runs out.
fn driven(run_id: &str, result: DomainResult<()>) {
    if let Err(err) = result {
        tracing::warn!(run_id, error = %err, "a run's driver failed; the run resumes when its lease runs out");
    }
}

/// What a driver's task came to.
async fn joined(driver: tokio::task::JoinHandle<DomainResult<()>>) -> DomainResult<()> {
    driver.await.map_err(|err| DomainError::Internal(format!("a run's driver failed: {err}")))?
}

/// Where something a member created lives, and who created it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owned<'a> {
    pub org_id: &'a str,
    pub project_id: Option<&'a str>,
    pub user_id: &'a str,
}

/// Where a caller stands towards what a member created; see [`Runs::relation_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relation {
    /// Another org's, another project's for a narrowed key, or not a member's.
    Outsider,
    /// Another member of its org.
    Member,
    /// Its creator, or an owner or admin of its org.
    Manager,
}

/// What of its org a caller lists; see [`Runs::listing`].
pub(super) struct Listing<'a> {
    pub org_id: &'a str,
    pub only_user: Option<&'a str>,
    pub project: Option<&'a str>,
}

/// The texts and tool names of a run, as its policy reads them.
struct PolicyInput<'a> {
    texts: Vec<&'a str>,
    tools: Vec<&'a str>,
}

impl PolicyInput<'_> {
    fn as_input(&self) -> RunInput<'_> {
        RunInput { texts: &self.texts, tools: &self.tools }
    }
}

fn policy_input(spec: &RunSpec) -> PolicyInput<'_> {
    let mut texts: Vec<&str> = spec.messages.iter().map(|message| message.content.as_str()).collect();
    texts.extend(spec.instructions.as_deref());
    let mut tools: Vec<&str> = spec.server_tools.iter().map(String::as_str).collect();
    tools.extend(spec.client_tools.iter().map(|tool| tool.name.as_str()));
    PolicyInput { texts, tools }
}

fn answered(run: &Run, tool_call_id: &str) -> bool {
    run.steps.iter().any(|record| record.step.tool_call_id() == Some(tool_call_id))
}

fn may_use_model(principal: &Principal, route: &str) -> bool {
    match &principal.via {
        Via::ApiKey { limits, .. } => limits.allows_model(route),
        Via::Session { .. } => true,
    }
}

/// A client tool's name as OpenAI takes it, a short description, and
/// parameters that are a JSON Schema object.
fn check_client_tool(tool: &ClientTool) -> DomainResult<()> {
    let name_ok = !tool.name.is_empty()
        && tool.name.len() <= 64
        && tool.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(invalid(
            "tools",
            format!("tool name {:?} must be 1 to 64 of a-z, A-Z, 0-9, _ and -", tool.name),
        ));
    }
    if tool.description.as_ref().is_some_and(|text| text.chars().count() > MAX_TOOL_DESCRIPTION_CHARS) {
        return Err(invalid(
            "tools",
            format!(
                "the description of {:?} is longer than {MAX_TOOL_DESCRIPTION_CHARS} characters",
                tool.name
            ),
        ));
    }
    compile(&tool.parameters).map(|_| ()).map_err(|reason| {
        invalid("tools", format!("the parameters of {:?} are not a JSON Schema: {reason}", tool.name))
    })
}
