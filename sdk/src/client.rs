//! Building a [`Client`](crate::Client): credentials as default headers, and
//! timeouts that bound connecting and silence but never a whole response, so
//! long streams are not cut off (progenitor's default is a 15 s total timeout).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, InvalidHeaderValue};

/// How the client authenticates.
#[derive(Clone, Default)]
pub enum Credential {
    /// No credential: only public operations will succeed.
    #[default]
    None,
    /// A session token or API key, sent as `Authorization: Bearer …`.
    Bearer(String),
    /// An API key, sent as `X-API-Key: …`.
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Credential::None",
            Self::Bearer(_) => "Credential::Bearer(***)",
            Self::ApiKey(_) => "Credential::ApiKey(***)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the credential contains characters not allowed in a header")]
    InvalidCredential(#[from] InvalidHeaderValue),
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Timeouts applied by [`connect`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest silence tolerated between bytes of a response, streams included.
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A client for the server at `base_url` (for example `http://127.0.0.1:8000`).
pub fn connect(base_url: &str, credential: Credential) -> Result<crate::Client, ConnectError> {
    connect_with(base_url, credential, reqwest::Client::builder())
}

/// Like [`connect`], starting from your own `reqwest` builder (proxies, TLS
/// roots, other timeouts); credentials and the default timeouts are added.
pub fn connect_with(
    base_url: &str,
    credential: Credential,
    builder: reqwest::ClientBuilder,
) -> Result<crate::Client, ConnectError> {
    let mut headers = HeaderMap::new();
    let secret = match credential {
        Credential::None => None,
        Credential::Bearer(token) => Some((AUTHORIZATION, format!("Bearer {token}"))),
        Credential::ApiKey(key) => Some((reqwest::header::HeaderName::from_static("x-api-key"), key)),
    };
    if let Some((name, value)) = secret {
        let mut value = HeaderValue::from_str(&value)?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let http = builder
        .default_headers(headers)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("switchyard-sdk-rust/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(crate::Client::new_with_client(base_url.trim_end_matches('/'), http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let shown =
            format!("{:?} {:?}", Credential::Bearer("s3cret".into()), Credential::ApiKey("k3y".into()));
        assert!(!shown.contains("s3cret") && !shown.contains("k3y"), "{shown}");
    }

    #[test]
    fn rejects_credentials_that_cannot_be_headers() {
        let err = connect("http://127.0.0.1:1", Credential::Bearer("bad\nvalue".into()));
        assert!(matches!(err, Err(ConnectError::InvalidCredential(_))));
    }
}
