//! The command line: serve, migrate, user create, token create, retention run, config check|example.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::config::Config;
use crate::domain::users::NewUser;

#[derive(Debug, Parser)]
#[command(name = "vitrine", version, about = "Share files through links you control.")]
pub struct Cli {
    /// Configuration file (default: ./vitrine.toml when present).
    #[arg(long, global = true, env = "VITRINE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage personal access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Analytics retention.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, env = "VITRINE_NEW_USER_PASSWORD")]
        password: String,
        #[arg(long)]
        name: String,
        /// user, dashboard or admin.
        #[arg(long, default_value = "user")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an access token for an account and print it (it is shown only once).
    Create {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
        /// What the token is for (1 to 100 characters).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: read, write, share, admin (admin: admin accounts only).
        #[arg(long)]
        scopes: String,
        /// Days until it expires (1 to 3650); without it the token does not expire.
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete raw analytics events older than `analytics_retention_days` and audit log entries older
    /// than `audit_retention_days` now.
    Run,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets masked) after validating it.
    Check,
    /// Print a commented example vitrine.toml with every setting and its default.
    Example,
}

/// Runs a command; `Ok(code)` is the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Config { command: ConfigCommand::Example } = command {
        print!("{}", crate::config::EXAMPLE_TOML);
        return Ok(0);
    }
    let config = Config::load(cli.config.as_deref())?;
    match command {
        Command::Config { command: ConfigCommand::Check } => {
            print!("{}", config.to_masked_toml()?);
            eprintln!("configuration is valid");
            Ok(0)
        }
        Command::Config { command: ConfigCommand::Example } => Ok(0),
        Command::Migrate => {
            let store = crate::store::Store::connect_for(&config).await?;
            store.migrate().await?;
            eprintln!("database is up to date");
            Ok(0)
        }
        Command::User { command: UserCommand::Create { email, password, name, role } } => {
            let state = AppState::build(config).await?;
            let new = NewUser::parse(Some(&email), Some(&password), Some(&name), Some(&role))
                .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
            let by = crate::domain::audit::Who::system();
            let user = crate::service::auth::create_account(&state, new, &by, crate::service::auth::Via::Cli)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
            println!("created {} account {} (id {})", user.role.as_str(), user.email, user.id);
            Ok(0)
        }
        Command::Token { command: TokenCommand::Create { email, name, scopes, expires_in_days } } => {
            let state = AppState::build(config).await?;
            let user = state
                .store
                .user_by_email(&email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no account with the e-mail address {email}"))?;
            if !user.is_active {
                anyhow::bail!("the account {email} is disabled");
            }
            let scopes = scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            let input = crate::domain::tokens::NewTokenIn { name: Some(name), scopes: Some(scopes), expires_in_days };
            let minted = crate::service::tokens::create(&state, &user, input, &crate::domain::audit::Who::system())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
            eprintln!(
                "created access token {} ({}) for {}; it is shown only once:",
                minted.token.id,
                minted.token.scopes.to_db(),
                user.email
            );
            println!("{}", minted.value);
            Ok(0)
        }
        Command::Retention { command: RetentionCommand::Run } => {
            let state = AppState::build(config).await?;
            let removed = crate::jobs::retention::run_once(&state).await?;
            println!("removed {removed} analytics events older than {} days", state.config.analytics_retention_days);
            let entries = crate::jobs::audit_retention::run_once(&state).await?;
            println!("removed {entries} audit log entries older than {} days", state.config.audit_retention_days);
            Ok(0)
        }
        Command::Serve => {
            let addr = config.listen_addr()?;
            let state = AppState::build(config).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}; change `listen` (VITRINE_LISTEN)"))?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            crate::app::run(listener, state, shutdown).await?;
            Ok(0)
        }
    }
}

/// SIGTERM or Ctrl-C starts a graceful shutdown.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested; finishing open requests");
    shutdown.cancel();
}
