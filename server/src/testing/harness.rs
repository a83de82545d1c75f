//! Starts real servers against throwaway databases, for the integration tests,
//! the SDK tests and the conformance suite. Each [`TestDatabase`] is unique
//! and removed when dropped, so no run depends on another's leftovers.

use std::net::SocketAddr;
use std::path::PathBuf;

use poem::listener::Acceptor;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::kernel::clock::Clock;
use crate::{App, AppError, Config};

/// Names the PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "SWITCHYARD_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEngine {
    Sqlite,
    Postgres,
}

impl TestEngine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{POSTGRES_URL_VAR} is not set")]
    PostgresUnavailable,
    #[error("creating the test database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("starting the server: {0}")]
    App(#[from] AppError),
}

/// A uniquely named, empty database that is dropped with this value.
pub struct TestDatabase {
    pub engine: TestEngine,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PostgresDatabase {
        admin_url: String,
        name: String,
    },
    /// Another handle owns the database.
    Nothing,
}

fn unique_name() -> String {
    format!("switchyard_test_{}", ulid::Ulid::new().to_string().to_lowercase())
}

impl TestDatabase {
    /// Another handle on the same database, for a second server (a replica);
    /// dropping it leaves the database to this one.
    pub fn shared(&self) -> Self {
        Self { engine: self.engine, url: self.url.clone(), cleanup: Cleanup::Nothing }
    }

    pub async fn create(engine: TestEngine) -> Result<Self, HarnessError> {
        let name = unique_name();
        match engine {
            TestEngine::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Ok(Self {
                    engine,
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::SqliteFile(path),
                })
            }
            TestEngine::Postgres => {
                let admin_url =
                    std::env::var(POSTGRES_URL_VAR).map_err(|_| HarnessError::PostgresUnavailable)?;
                let mut conn = PgConnection::connect(&admin_url).await?;
                // Identifiers cannot be bound as parameters; `name` is generated
                // here from [a-z0-9_] only.
                conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
                conn.close().await?;
                let mut url =
                    url::Url::parse(&admin_url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
                url.set_path(&name);
                Ok(Self {
                    engine,
                    url: url.to_string(),
                    cleanup: Cleanup::PostgresDatabase { admin_url, name },
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Nothing => {}
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop may run inside a runtime; use a fresh one on its own thread.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(async {
                        let mut conn = PgConnection::connect(&admin_url).await?;
                        conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                        conn.close().await
                    })?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
                .join();
                if let Ok(Err(err)) = dropped {
                    eprintln!("warning: could not drop test database: {err}");
                }
            }
        }
    }
}

/// A server running in this process on a free port.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub base_url: String,
    /// Dropping it (with the server, or in `stop`) shuts the server down.
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AppError>>,
    pub database: TestDatabase,
    /// The server's clock: a test moves it forward to make things expire.
    pub clock: Clock,
}

impl RunningServer {
    /// Starts a server on `127.0.0.1:0` against `database`; `configure` may
    /// adjust the config (for example to turn off `auto_migrate`).
    pub async fn start(
        database: TestDatabase,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self, HarnessError> {
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database.url.clone(),
            ..Config::default()
        };
        configure(&mut config);
        let app = App::build(config).await?;
        let clock = app.state().clock.clone();
        let acceptor = app.bind().await?;
        let addr = acceptor
            .local_addr()
            .into_iter()
            .find_map(|addr| addr.as_socket_addr().copied())
            .ok_or_else(|| AppError::Io(std::io::Error::other("listener has no address")))?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.serve(acceptor, async {
            let _ = rx.await;
        }));
        Ok(Self { addr, base_url: format!("http://{addr}"), shutdown: tx, task, database, clock })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops the server gracefully, waits for it, and hands back its
    /// database (dropped, and so deleted, when the caller is done with it).
    pub async fn stop(self) -> Result<TestDatabase, AppError> {
        let Self { shutdown, task, database, .. } = self;
        drop(shutdown);
        task.await.map_err(|e| AppError::Io(std::io::Error::other(e)))??;
        Ok(database)
    }
}
