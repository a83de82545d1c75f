//! The database: the connection pool, migrations, [`StoreError`], settings and
//! housekeeping. Both engines share one pool type (`sqlx::Any`) and `$N`
//! placeholders; the only engine-specific parts are the migration sets,
//! the lock clause of the runs claim (`runs::store`) and
//! connection setup. Each area keeps its own SQL in its `store` module, as
//! `impl Db` blocks.

mod housekeeping;
mod settings;

pub use housekeeping::{Retention, Swept};

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StoreError::UnsupportedUrl),
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATIONS,
            Self::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database_url must start with sqlite:// or postgres://")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Whether the database can serve traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready { applied: usize },
    Unreachable(String),
    MigrationsPending { applied: usize, expected: usize },
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
}

impl Db {
    /// Opens a pool. A SQLite file is created if it does not exist.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let engine = Engine::from_url(url)?;
        let url = match engine {
            Engine::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        // Validate the URL before the pool starts retrying it in the background.
        sqlx::any::AnyConnectOptions::from_str(&url)?;
        // SQLite takes one writer at a time. With one connection, writers
        // queue in the pool (in order, woken as soon as the last is done)
        // instead of in SQLite's busy handler, which sleeps between retries
        // (docs/benchmarks.md, "Agent runs"). Reads are short and share the
        // queue. A SQLite connection is a file in this process, with no far
        // end to lose: it is not pinged before each use (a round trip to its
        // worker thread that every statement outside a transaction, and
        // every transaction, would queue behind). The pool still pings it on
        // release, which also flushes the rollback of a dropped transaction.
        let pool = AnyPoolOptions::new()
            .max_connections(match engine {
                Engine::Sqlite => 1,
                Engine::Postgres => 16,
            })
            .test_before_acquire(engine == Engine::Postgres)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Self { pool, engine })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies pending migrations, then chains any audit events recorded
    /// before the audit trail was hash-chained.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.engine.migrator().run(&self.pool).await?;
        self.audit_chain_backfill().await?;
        Ok(())
    }

    /// Checks the database answers and every known migration is applied.
    pub async fn readiness(&self) -> Readiness {
        let expected = self.engine.migrator().iter().filter(|m| m.migration_type.is_up_migration()).count();
        let applied = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await;
        match applied {
            Ok(applied) if applied as usize >= expected => Readiness::Ready { applied: applied as usize },
            Ok(applied) => Readiness::MigrationsPending { applied: applied as usize, expected },
            // A database with no migration table at all has nothing applied.
            Err(sqlx::Error::Database(_)) => match sqlx::query("SELECT 1").execute(&self.pool).await {
                Ok(_) => Readiness::MigrationsPending { applied: 0, expected },
                Err(err) => Readiness::Unreachable(err.to_string()),
            },
            Err(err) => Readiness::Unreachable(err.to_string()),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether `err` is a unique-constraint violation, on either engine.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
