//! What operators and load balancers ask the server itself: liveness and
//! readiness probes (`health`) and what this server is (`meta`).

pub mod health;
pub mod meta;
