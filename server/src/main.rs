//! The `switchyard` command line: `serve`, `migrate`, `keys create`, `outbox` and `config print`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_server::audit;
use switchyard_server::config::{Config, LogFormat, Overrides};
use switchyard_server::db::{Db, Retention};
use switchyard_server::identity;
use switchyard_server::kernel::clock::Clock;
use switchyard_server::kernel::context::RequestContext;
use switchyard_server::kernel::principal::Scope;
use switchyard_server::mail::OutboxRow;
use switchyard_server::mail::{BodyKey, Mailer};
use switchyard_server::{App, telemetry};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "One self-hostable server for products built on LLM agents.")]
struct Cli {
    /// TOML config file (default: ./switchyard.toml when present).
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://path or postgres://user:pass@host/db.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log output format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every chain (or one org's) and report where one breaks;
    /// exits non-zero when any does.
    Verify {
        /// Only this organization's chain.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8000).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys on the server host.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the newest outgoing mail (verification codes, reset links),
    /// oldest first: without `[smtp]`, this is where mail goes.
    Outbox {
        /// How many messages to print.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Check the audit trail's hash chains on the server host.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Delete expired sessions, tokens, codes, old invitations and delivered
    /// mail now (`serve` does it every `housekeeping_interval_secs`).
    Housekeeping,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Mint a key, creating the owner account and the organization if missing.
    /// The key is printed once.
    Create {
        /// Organization name; created with the owner if they have none by this name.
        #[arg(long)]
        org: String,
        /// The owner's email; the account is created if missing.
        #[arg(long)]
        email: String,
        /// A name for the key.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: chat, runs, knowledge, agents, orders, proxy, admin, or `*`.
        #[arg(long, value_delimiter = ',', value_parser = parse_scope, required = true)]
        scopes: Vec<Scope>,
    },
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    Scope::parse(raw.trim()).ok_or_else(|| {
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown scope `{raw}`; known: {}", known.join(", "))
    })
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets masked.
    Print,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: match &cli.command {
            Command::Serve { listen } => *listen,
            _ => None,
        },
        database_url: cli.database_url.clone(),
        log_format: cli.log_format,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("switchyard: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_level);
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "switchyard failed");
            eprintln!("switchyard: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            let db = Db::connect(&config.database_url).await?;
            db.migrate().await?;
            let mail = Mailer::new(None, &config.public_url, config.encryption_key.clone());
            let sealed = mail.seal_clear_bodies(&db).await;
            db.close().await;
            sealed?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys { command: KeysCommand::Create { org, email, name, scopes } } => {
            let db = Db::connect(&config.database_url).await?;
            db.migrate().await?;
            let ctx = RequestContext::local(&Clock::system());
            let made = identity::api_key_bootstrap(&db, &email, &org, name, scopes, &ctx).await;
            db.close().await;
            let made = made.map_err(|err| anyhow::anyhow!("{err}"))?;
            if made.user_created {
                eprintln!("created user {email} (no password yet: set one with a password reset)");
            }
            if made.org_created {
                eprintln!("created organization {org} ({})", made.minted.key.org_id);
            }
            eprintln!("API key {} (shown once; store it now):", made.minted.key.id);
            println!("{}", made.minted.plain);
            Ok(())
        }
        Command::Outbox { limit } => {
            let db = Db::connect(&config.database_url).await?;
            db.migrate().await?;
            let rows = db.outbox_list(i64::from(limit)).await;
            let key = BodyKey::load(&db, config.encryption_key.as_deref()).await;
            db.close().await;
            let (rows, key) = (rows?, key?);
            if rows.is_empty() {
                eprintln!("the outbox is empty");
            }
            for row in rows.iter().rev() {
                print!("{}", render_outbox_row(row, &key));
            }
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { org } } => {
            let db = Db::connect(&config.database_url).await?;
            db.migrate().await?;
            let verified = verify_chains(&db, org).await;
            db.close().await;
            let broken = verified?;
            if broken > 0 {
                anyhow::bail!("{broken} audit chain(s) are broken");
            }
            Ok(())
        }
        Command::Housekeeping => {
            let db = Db::connect(&config.database_url).await?;
            db.migrate().await?;
            let swept = db.sweep(Clock::system().now(), Retention::default()).await;
            db.close().await;
            let swept = swept?;
            println!(
                "swept {} rows: {} sessions, {} refresh tokens, {} login challenges, {} verification codes, \
                 {} reset tokens, {} invitations, {} delivered mails, {} idempotency keys, {} run events",
                swept.total(),
                swept.sessions,
                swept.refresh_tokens,
                swept.login_challenges,
                swept.email_verifications,
                swept.password_resets,
                swept.invitations,
                swept.delivered_mail,
                swept.idempotency_keys,
                swept.run_events,
            );
            Ok(())
        }
        Command::Config { command: ConfigCommand::Print } => {
            print!("{}", config.to_masked_toml()?);
            Ok(())
        }
    }
}

/// Verifies `org`'s chain, or every chain, printing a line for each; returns
/// how many are broken.
async fn verify_chains(db: &Db, org: Option<String>) -> anyhow::Result<usize> {
    let chains = match org {
        Some(org) => vec![org],
        None => audit::chains(db).await.map_err(|err| anyhow::anyhow!("{err}"))?,
    };
    let mut broken = 0;
    for chain in chains {
        let verified = audit::verify_chain(db, &chain).await.map_err(|err| anyhow::anyhow!("{err}"))?;
        let name = if chain.is_empty() { "accounts" } else { chain.as_str() };
        match verified.broken_at {
            None => {
                println!("{name}: intact, {} events, head {}", verified.verified_events, verified.head_hash)
            }
            Some(seq) => {
                broken += 1;
                println!(
                    "{name}: BROKEN at event {seq} ({} events verified before it)",
                    verified.verified_events
                );
            }
        }
    }
    Ok(broken)
}

/// One message as `switchyard outbox` prints it.
fn render_outbox_row(row: &OutboxRow, key: &BodyKey) -> String {
    // A time out of chrono's range is printed as the seconds stored.
    let created = chrono::DateTime::from_timestamp(row.created_at, 0)
        .map_or_else(|| row.created_at.to_string(), |t| t.to_rfc3339());
    let mut out = format!(
        "--- {} ({}, {}, {created})\nTo: {}\nSubject: {}\n",
        row.id,
        row.kind,
        row.status.as_str(),
        row.recipient,
        row.subject
    );
    if let Some(error) = &row.last_error {
        out.push_str(&format!("Last error ({} attempts): {error}\n", row.attempts));
    }
    out.push('\n');
    let body = key.open(&row.id, &row.body).unwrap_or_else(|unreadable| format!("({unreadable})"));
    out.push_str(&body);
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out.push('\n');
    out
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        listen = %config.listen,
        database = %switchyard_server::config::mask_url_password(&config.database_url),
        auto_migrate = config.auto_migrate,
        "starting"
    );
    let app = App::build(config).await?;
    let acceptor = app.bind().await?;
    for addr in poem::listener::Acceptor::local_addr(&acceptor) {
        tracing::info!(%addr, "listening");
    }
    app.serve(acceptor, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
