//! Starts a server for a set of `x-server` settings: each key names a field of the server's
//! [`Config`], applied over the defaults, on a fresh database of the chosen engine.

use serde_json::{Map, Value};
use switchyard_server::Config;
use switchyard_server::testing::harness::{RunningServer, TestDatabase, TestEngine};

/// Settings the harness chooses itself: the address and the throwaway database.
const HARNESS_OWNED: [&str; 2] = ["listen", "database_url"];

pub async fn start(engine: TestEngine, settings: &Map<String, Value>) -> Result<RunningServer, String> {
    let wanted = configure(settings)?;
    let database = TestDatabase::create(engine).await.map_err(|e| e.to_string())?;
    RunningServer::start(database, move |config| {
        *config = Config {
            listen: config.listen,
            database_url: std::mem::take(&mut config.database_url),
            ..wanted
        };
    })
    .await
    .map_err(|e| e.to_string())
}

/// The default config with `settings` applied; an unknown key or a bad value is an error.
fn configure(settings: &Map<String, Value>) -> Result<Config, String> {
    let defaults = serde_json::to_value(Config::default()).map_err(|e| format!("reading the config: {e}"))?;
    let Value::Object(mut config) = defaults else {
        return Err("the server config is not a map of settings".to_owned());
    };
    for (key, value) in settings {
        if HARNESS_OWNED.contains(&key.as_str()) {
            return Err(format!("x-server `{key}` is chosen by the conformance harness"));
        }
        if !config.contains_key(key) {
            let known: Vec<_> =
                config.keys().filter(|known| !HARNESS_OWNED.contains(&known.as_str())).cloned().collect();
            return Err(format!("unknown x-server setting `{key}`; known: {}", known.join(", ")));
        }
        let mut value = value.clone();
        crate::upstreams::fill(&mut value)?;
        config.insert(key.clone(), value);
    }
    serde_json::from_value(Value::Object(config)).map_err(|e| format!("x-server: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn known_settings_apply_over_the_defaults() -> Result<(), String> {
        let config = configure(&settings(json!({ "auto_migrate": false })))?;
        assert_eq!(config, Config { auto_migrate: false, ..Config::default() });
        Ok(())
    }

    #[test]
    fn unknown_harness_owned_and_mistyped_settings_fail() {
        let unknown = configure(&settings(json!({ "auto_migrat": false })));
        assert!(unknown.is_err_and(|e| e.contains("unknown x-server setting `auto_migrat`")));
        let owned = configure(&settings(json!({ "database_url": "sqlite://x.db" })));
        assert!(owned.is_err_and(|e| e.contains("chosen by the conformance harness")));
        let mistyped = configure(&settings(json!({ "auto_migrate": "no" })));
        assert!(mistyped.is_err_and(|e| e.starts_with("x-server: ")));
    }
}
