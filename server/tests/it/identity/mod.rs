//! Identity over HTTP: accounts, sessions, API keys, two-factor login, email
//! flows, organizations, members, invitations, projects and step-up, each
//! topic in its own file; the requests several of them send are here.

mod abuse;
mod accounts;
mod api_keys;
mod email;
mod invitations;
mod key_usage;
mod members;
mod password_change;
mod projects;
mod sessions;
mod step_up;
mod two_factor;

use serde_json::{Value, json};

use crate::support::{Api, BoxError, Credential, Reply};

pub(crate) const ME: &str = "/v1/auth/me";

pub(crate) async fn register(api: &Api, email: &str, password: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/register", Credential::Anonymous, json!({"email": email, "password": password})).await
}

pub(crate) async fn login(api: &Api, email: &str, password: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/login", Credential::Anonymous, json!({"email": email, "password": password})).await
}

pub(crate) async fn refresh(api: &Api, refresh_token: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": refresh_token})).await
}

pub(crate) async fn logout(api: &Api, access_token: &str) -> Result<Reply, BoxError> {
    api.call(reqwest::Method::POST, "/v1/auth/logout", Credential::Bearer(access_token), None).await
}

/// The `id`s of the objects in a JSON array, such as a page's `data`.
pub(crate) fn ids(objects: &Value) -> Vec<String> {
    let objects = objects.as_array().map(Vec::as_slice).unwrap_or_default();
    objects.iter().filter_map(|object| object["id"].as_str().map(str::to_owned)).collect()
}
