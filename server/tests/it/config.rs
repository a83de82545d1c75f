//! Configuration precedence (defaults < file < environment < flags) and
//! errors that name the offending key.

use figment::Jail;
use switchyard_server::config::{Config, ConfigError, LogFormat, Overrides};

#[test]
#[expect(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
fn defaults_then_file_then_environment_then_flags() {
    Jail::expect_with(|jail| {
        assert_eq!(Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?, Config::default());

        jail.create_file(
            "switchyard.toml",
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 2048\ndatabase_url = \"sqlite://file.db\"\n",
        )?;
        let from_file = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.max_body_bytes, 2048);

        jail.set_env("SWITCHYARD_LISTEN", "127.0.0.1:9100");
        jail.set_env("SWITCHYARD_LOG_FORMAT", "json");
        jail.set_env("SWITCHYARD_TEST_POSTGRES_URL", "postgres://ignored");
        let from_env = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(from_env.listen.port(), 9100);
        assert_eq!(from_env.log_format, LogFormat::Json);
        assert_eq!(from_env.database_url, "sqlite://file.db");

        let flags = Overrides { database_url: Some("sqlite://flag.db".into()), ..Overrides::default() };
        let from_flags = Config::load(None, &flags).map_err(|e| e.to_string())?;
        assert_eq!(from_flags.database_url, "sqlite://flag.db");
        assert_eq!(from_flags.listen.port(), 9100);
        Ok(())
    });
}

#[test]
#[expect(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
fn bad_values_and_unknown_keys_name_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "max_body_bytes = \"lots\"\n")?;
        let err = Config::load(Some("bad.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("max_body_bytes")), "{err:?}");

        jail.create_file("unknown.toml", "listne = \"127.0.0.1:1\"\n")?;
        let err =
            Config::load(Some("unknown.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("listne")), "{err:?}");

        jail.create_file("filter.toml", "log_level = \"info,[\"\n")?;
        let err =
            Config::load(Some("filter.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("log_level")), "{err:?}");

        jail.create_file("url.toml", "database_url = \"mysql://localhost/db\"\n")?;
        let err = Config::load(Some("url.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("database_url")), "{err:?}");

        jail.create_file("outbound.toml", "[outbound]\nallow = [\"10.0.0.0/33\"]\n")?;
        let err =
            Config::load(Some("outbound.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("outbound.allow") && e.contains("10.0.0.0/33")),
            "{err:?}"
        );

        jail.create_file(
            "tools.toml",
            "[tools.lookup_order]\nurl = \"https://orders.example.com/lookup\"\ndescription = \"d\"\n\
             headers_env = { Authorization = \"ORDERS_TOKEN_OF_THE_CONFIG_TEST\" }\n",
        )?;
        let err =
            Config::load(Some("tools.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("tools.lookup_order.headers_env.Authorization")),
            "{err:?}"
        );
        jail.set_env("ORDERS_TOKEN_OF_THE_CONFIG_TEST", "Bearer t0ken");
        let loaded =
            Config::load(Some("tools.toml".as_ref()), &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            loaded.tools["lookup_order"].headers_env["Authorization"],
            "ORDERS_TOKEN_OF_THE_CONFIG_TEST"
        );
        let shown = loaded.to_masked_toml().map_err(|e| e.to_string())?;
        assert!(shown.contains("[tools.lookup_order]") && !shown.contains("t0ken"), "{shown}");

        jail.create_file(
            "clash.toml",
            "[tools.calculate]\nurl = \"https://calc.example.com/\"\ndescription = \"d\"\n",
        )?;
        let err =
            Config::load(Some("clash.toml".as_ref()), &Overrides::default()).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("tools.calculate")), "{err:?}");

        jail.set_env("SWITCHYARD_AUTO_MIGRATE", "perhaps");
        let err = Config::load(None, &Overrides::default()).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.to_lowercase().contains("auto_migrate")), "{err:?}");
        Ok(())
    });
}

#[test]
fn a_named_config_file_must_exist() {
    let err = Config::load(Some("/nonexistent/switchyard.toml".as_ref()), &Overrides::default());
    assert!(matches!(err, Err(ConfigError::MissingFile(_))));
}
