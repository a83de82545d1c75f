//! The browser origins allowed to open WebSockets (`[cors] allowed_origins`):
//! a page on another site could otherwise open one with its visitor's
//! credentials in the first frame. Requests without `Origin` (servers,
//! CLIs) are not browsers' and pass.

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins such as `"https://app.example.com"` (scheme, host and port
    /// if not the default; no path).
    pub allowed_origins: Vec<String>,
}

/// The allowed origins, each in the form browsers send (`scheme://host[:port]`).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// Checks and normalises each configured origin.
    pub fn parse(config: &CorsConfig) -> Result<Self, String> {
        let origins = config
            .allowed_origins
            .iter()
            .map(|origin| {
                normalized(origin)
                    .ok_or_else(|| format!("{origin:?} is not an origin such as \"https://app.example.com\""))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// Whether a request that sent `origin` (or none) may go on.
    pub fn admits(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => normalized(origin).is_some_and(|origin| self.origins.contains(&origin)),
        }
    }
}

/// `scheme://host[:port]` in lower case, without a default port; `None`
/// for anything with a path, query, credentials, or no host.
fn normalized(origin: &str) -> Option<String> {
    let url = Url::parse(origin).ok()?;
    let bare = url.path() == "/" && !origin.ends_with('/') || url.path().is_empty();
    if !bare || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return None;
    }
    url.host_str()?;
    Some(url.origin().ascii_serialization()).filter(|serialized| serialized != "null")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(origins: &[&str]) -> AllowedOrigins {
        let config = CorsConfig { allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect() };
        AllowedOrigins::parse(&config).unwrap_or_default()
    }

    #[test]
    fn requests_without_an_origin_pass_and_others_must_be_listed() {
        let origins = allowed(&["https://App.Example.com", "http://localhost:3000"]);
        assert!(origins.admits(None));
        assert!(origins.admits(Some("https://app.example.com")));
        assert!(origins.admits(Some("https://app.example.com:443")));
        assert!(origins.admits(Some("http://localhost:3000")));
        assert!(!origins.admits(Some("http://localhost:3001")));
        assert!(!origins.admits(Some("https://evil.example.com")));
        assert!(!origins.admits(Some("null")));
        assert!(!origins.admits(Some("not a url")));
        assert!(!allowed(&[]).admits(Some("https://app.example.com")));
    }

    #[test]
    fn configured_origins_must_be_bare_origins() {
        for bad in ["https://app.example.com/path", "app.example.com", "https://u:p@app.example.com", "*"] {
            let config = CorsConfig { allowed_origins: vec![bad.to_owned()] };
            assert!(AllowedOrigins::parse(&config).is_err(), "{bad} was accepted");
        }
    }
}
