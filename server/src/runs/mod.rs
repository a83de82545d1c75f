//! Governed agent runs: the agent loop over the gateway with server tools
//! and client-executed tools, journaled step by step and driven under a
//! database lease, so a run outlives the request (or the server) that
//! started it.
//!
//! [`Runs`] is the front the API calls; `service` holds its operations and
//! who may see which run, `policy` the operator's rules per route,
//! `approvals` who decides on a paused run and how, `engine` the loop, `events` the event streams,
//! `trail` what runs write to the audit trail and the metrics, `tools` the server tools
//! (built in, and the operator's HTTP tools),
//! `sessions` conversations that runs continue and whom they are shared with,
//! `worker` the task that resumes runs no server is driving, `store` the
//! SQL, and `model` what a run is.

pub mod api;
mod approvals;
mod config;
mod engine;
mod events;
pub mod model;
mod policy;
mod service;
mod sessions;
mod store;
mod tools;
mod trail;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::RunsConfig;
pub use policy::{InvalidPolicy, Policies, PolicyConfig};
pub use service::MAX_STEPS;
pub use service::{NewRun, RunTool, RunsWanted, ToolOutput, Wait};
pub use sessions::{
    Access, AccessChange, Permission, Session, SessionDetail, SessionMessage, SessionTotals, Visibility,
};
pub use tools::{HttpToolConfig, HttpToolMethod, InvalidTool, ToolRegistry};
pub use worker::Resumer;

use crate::db::Db;
use crate::gateway::{Gateway, GatewayDeps};
use crate::identity::KeyCache;
use crate::kernel::clock::Clock;
use crate::kernel::ids::new_id;
use crate::metrics::RunMetrics;
use crate::state::AppState;

/// The runs area, as handlers and background tasks reach it.
#[derive(Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
    tools: ToolRegistry,
    config: RunsConfig,
    /// The rules of each route's runs (`[policies.<route>]`).
    policies: Policies,
    /// This server's name on the leases it takes.
    owner: String,
    /// Wakes the event streams that follow a run on this server when it
    /// writes the run's events; streams also look every second, for events
    /// other replicas write.
    bells: Mutex<HashMap<String, Weak<Notify>>>,
    /// Every driver this server started, so shutting down can wait for them.
    drivers: TaskTracker,
    /// Cancelled when the server shuts down: drivers stop where they are.
    stopping: CancellationToken,
}

impl Runs {
    /// The runs area, with the built-in tools and the operator's HTTP tools
    /// (`[tools.<name>]`), which call out through the state's outbound guard,
    /// and each route's policy.
    pub fn new(
        state: AppState,
        config: RunsConfig,
        http_tools: &BTreeMap<String, HttpToolConfig>,
        policies: Policies,
    ) -> Result<Self, InvalidTool> {
        let tools = ToolRegistry::with_http_tools(http_tools, &state.outbound)?;
        let inner = Inner {
            state,
            tools,
            config,
            policies,
            owner: new_id("srv"),
            bells: Mutex::default(),
            drivers: TaskTracker::new(),
            stopping: CancellationToken::new(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Stops driving runs, for a graceful shutdown: every driver of this
    /// server stops where it is (the journal holds what it did), and its
    /// leases are given up without ending the runs, so the next server
    /// resumes them at once instead of after the lease would have run out.
    pub async fn shut_down(&self) {
        self.inner.stopping.cancel();
        self.inner.drivers.close();
        self.inner.drivers.wait().await;
        match self.db().run_leases_release(self.owner(), self.clock().now()).await {
            Ok(released) if released > 0 => {
                tracing::info!(released, "gave up the leases of runs still going")
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not give up run leases; they run out by themselves")
            }
        }
    }

    /// Cancelled when the server shuts down, for what serves runs' clients
    /// (WebSocket connections close, telling them to reconnect elsewhere).
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.inner.stopping.clone()
    }

    /// The bell a stream following `run_id` waits on.
    fn bell(&self, run_id: &str) -> Arc<Notify> {
        let mut bells = self.inner.bells.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bell) = bells.get(run_id).and_then(Weak::upgrade) {
            return bell;
        }
        bells.retain(|_, bell| bell.strong_count() > 0);
        let bell = Arc::new(Notify::new());
        bells.insert(run_id.to_owned(), Arc::downgrade(&bell));
        bell
    }

    /// Tells the streams following `run_id` that it has new events.
    fn ring(&self, run_id: &str) {
        let bells = self.inner.bells.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bell) = bells.get(run_id).and_then(Weak::upgrade) {
            bell.notify_waiters();
        }
    }

    fn db(&self) -> &Db {
        &self.inner.state.db
    }

    fn clock(&self) -> &Clock {
        &self.inner.state.clock
    }

    fn keys(&self) -> &KeyCache {
        &self.inner.state.keys
    }

    fn gateway(&self) -> &Gateway {
        &self.inner.state.gateway
    }

    fn gateway_deps(&self) -> GatewayDeps<'_> {
        self.inner.state.gateway_deps()
    }

    fn metrics(&self) -> &RunMetrics {
        self.inner.state.metrics.runs()
    }

    fn tools(&self) -> &ToolRegistry {
        &self.inner.tools
    }

    fn owner(&self) -> &str {
        &self.inner.owner
    }

    fn lease_secs(&self) -> i64 {
        i64::try_from(self.inner.config.lease_secs).unwrap_or(i64::MAX)
    }
}
