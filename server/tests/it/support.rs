//! Shared test plumbing: start a server on a fresh database of either engine,
//! and run one test body on both engines.

use switchyard_server::Config;
pub use switchyard_server::harness::{POSTGRES_URL_VAR, RunningServer, TestDatabase, TestEngine};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Starts a server on a new database of `engine`, configured by `configure`.
pub async fn start(
    engine: TestEngine,
    configure: impl FnOnce(&mut Config),
) -> Result<RunningServer, Box<dyn std::error::Error + Send + Sync>> {
    Ok(RunningServer::start(TestDatabase::create(engine).await?, configure).await?)
}

/// Whether tests may use `engine`; PostgreSQL needs `SWITCHYARD_TEST_POSTGRES_URL`.
pub fn engine_available(engine: TestEngine) -> bool {
    let available = engine == TestEngine::Sqlite || std::env::var_os(POSTGRES_URL_VAR).is_some();
    if !available {
        eprintln!("SKIPPED on {}: {POSTGRES_URL_VAR} is not set", engine.name());
    }
    available
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Declares each listed `async fn(TestEngine) -> TestResult` as a test on
/// SQLite and one on PostgreSQL.
macro_rules! on_both_engines {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() -> $crate::support::TestResult {
                    super::$test($crate::support::TestEngine::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() -> $crate::support::TestResult {
                    if !$crate::support::engine_available($crate::support::TestEngine::Postgres) {
                        return Ok(());
                    }
                    super::$test($crate::support::TestEngine::Postgres).await
                }
            )+
        }
    };
}
pub(crate) use on_both_engines;
