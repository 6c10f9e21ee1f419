//! The test binary of the federated runtime: a director or an envoy with the test flows of
//! `testflows/`. The integration tests start it as separate processes.
//!
//! ```text
//! fed-testbin director --listen 127.0.0.1:0 (--certs DIR | --plaintext)
//! fed-testbin envoy --director ADDR --name NAME (--certs DIR | --plaintext
//!                   | --ca FILE [--cert FILE --key FILE]) [--variant v2]
//! ```
//! The director prints `LISTENING <addr>` on stdout once it listens.

#[path = "../../testflows/mod.rs"]
mod testflows;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use flspec_federated::logs::LogFormat;
use flspec_federated::{Director, DirectorOptions, Envoy, EnvoyOptions, TlsConfig};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(about = "flspec federated runtime: test director and envoys")]
struct Cli {
    /// Exit when stdin reaches its end (tests hold its other end, so their children never
    /// outlive them).
    #[arg(long, global = true)]
    exit_on_stdin_eof: bool,
    /// The log format on stderr: `text` or `json` (one JSON object per line, with the run,
    /// flow, step and participant on each line inside a run).
    #[arg(long, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a director with the test flows.
    Director {
        /// Address to listen on (port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// Milliseconds of silence after which an envoy is lost.
        #[arg(long, default_value_t = 10_000)]
        heartbeat_timeout_ms: u64,
        /// The largest message, in bytes.
        #[arg(long)]
        max_message_bytes: Option<usize>,
        /// Where runs write their checkpoints.
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        /// The state folder: a restarted director resumes its unfinished runs.
        #[arg(long)]
        state: Option<PathBuf>,
        /// The hosting list: per line an envoy and the collaborators it may host.
        #[arg(long)]
        hosts: Option<PathBuf>,
        /// Milliseconds a resumed run waits for its envoys.
        #[arg(long, default_value_t = 60_000)]
        resume_wait_ms: u64,
        /// The admin address (plain HTTP: /metrics, /healthz, /readyz); never a public one.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Runs an envoy with the test flows.
    Envoy {
        /// The director's address.
        #[arg(long)]
        director: String,
        /// The collaborator name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// `v2`: another version of `FanOutFlow`.
        #[arg(long)]
        variant: Option<String>,
        /// A collaborator this envoy hosts (repeatable; default: its own name).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Exit when the session with the director ends, instead of reconnecting.
        #[arg(long)]
        no_reconnect: bool,
        /// Milliseconds between the envoy's HTTP/2 pings to the director (a half-open
        /// connection is noticed within three times this).
        #[arg(long, default_value_t = 10_000)]
        keepalive_ms: u64,
    },
}

/// How a participant secures its connections: one of `--certs`, `--ca` (with or without
/// `--cert`/`--key`) or `--plaintext`; clap refuses a mix rather than letting one win.
#[derive(Args)]
struct TlsArgs {
    /// Folder made by `flspec-fed certs`.
    #[arg(long, conflicts_with_all = ["ca", "cert", "key"])]
    certs: Option<PathBuf>,
    /// CA certificate (with --cert/--key, or alone to present no certificate).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// This participant's certificate.
    #[arg(long, requires_all = ["ca", "key"])]
    cert: Option<PathBuf>,
    /// This participant's private key.
    #[arg(long, requires_all = ["ca", "cert"])]
    key: Option<PathBuf>,
    /// No TLS (development only).
    #[arg(long, conflicts_with_all = ["certs", "ca", "cert", "key"])]
    plaintext: bool,
}

impl TlsArgs {
    fn config(&self, who: &str) -> anyhow_lite::Result<TlsConfig> {
        if self.plaintext {
            return Ok(TlsConfig::insecure_plaintext());
        }
        if let Some(dir) = &self.certs {
            return Ok(TlsConfig::from_dir(dir, who)?);
        }
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(TlsConfig::mutual(ca, cert, key)?),
            (Some(ca), None, None) => Ok(TlsConfig::without_client_certificate(ca)?),
            _ => Err("give --certs DIR, --ca/--cert/--key, or --plaintext".into()),
        }
    }
}

mod anyhow_lite {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

fn main() {
    let cli = Cli::parse();
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let (text, json) = match cli.log_format {
        LogFormat::Text => (
            Some(
                // The tests read these logs from files: plain text, whether or not another
                // crate of the build turned on tracing-subscriber's `ansi` feature.
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .with_filter(filter()),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(flspec_federated::logs::json_layer(std::io::stderr).with_filter(filter())),
        ),
    };
    tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(flspec_federated::envoy::log_layer())
        .init();
    if cli.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start tokio: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow_lite::Result<()> {
    match cli.command {
        Command::Director {
            listen,
            tls,
            heartbeat_timeout_ms,
            max_message_bytes,
            checkpoint_dir,
            state,
            hosts,
            resume_wait_ms,
            admin,
        } => {
            let mut options = DirectorOptions {
                heartbeat: Duration::from_millis((heartbeat_timeout_ms / 5).max(50)),
                heartbeat_timeout: Duration::from_millis(heartbeat_timeout_ms),
                checkpoint_dir,
                state_dir: state,
                hosts_file: hosts,
                resume_wait: Duration::from_millis(resume_wait_ms),
                admin_addr: admin,
                ..DirectorOptions::default()
            };
            if let Some(max) = max_message_bytes {
                options.limits.max_message_bytes = max;
            }
            let director = Director::start(
                &listen,
                tls.config("director")?,
                testflows::director_registry(),
                options,
            )
            .await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "LISTENING {}", director.local_addr())?;
            if let Some(admin) = director.admin_addr() {
                writeln!(out, "ADMIN {admin}")?;
            }
            out.flush()?;
            drop(out);
            director.wait().await?;
            Ok(())
        }
        Command::Envoy {
            director,
            name,
            tls,
            variant,
            hosts,
            no_reconnect,
            keepalive_ms,
        } => {
            let config = tls.config(&format!("envoys/{name}"))?;
            let options = EnvoyOptions {
                reconnect: !no_reconnect,
                keepalive: Duration::from_millis(keepalive_ms.max(1)),
                ..EnvoyOptions::default()
            };
            let mut envoy = Envoy::new(
                director,
                config,
                name,
                testflows::envoy_registry(variant.as_deref()),
            )
            .options(options);
            if !hosts.is_empty() {
                envoy = envoy.hosting(hosts);
            }
            envoy.run().await?;
            Ok(())
        }
    }
}
