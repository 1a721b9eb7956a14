//! The `vitrine` binary: parse the command line, set up logging, dispatch.

use clap::Parser;
use vitrine::cli::{Cli, Command};
use vitrine::config::{Config, LogFormat};

fn main() {
    // Everything created under data_dir is for this user only (files 0600, directories 0700).
    vitrine::private_fs::restrict_umask();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    // Logging follows the configuration when it loads; `config` commands report their own errors.
    if !matches!(cli.command, Some(Command::Config { .. }))
        && let Ok(config) = Config::load(cli.config.as_deref())
    {
        init_tracing(&config);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(vitrine::cli::run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
