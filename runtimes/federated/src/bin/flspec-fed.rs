//! `flspec-fed`: certificates for a federation, and the list of a director's envoys.
//!
//! ```text
//! flspec-fed certs --out DIR --director-host 127.0.0.1 --envoy Bengaluru --envoy Portland
//! flspec-fed envoys --director 127.0.0.1:50050 --certs DIR
//! flspec-fed status --director 127.0.0.1:50050 --certs DIR --run RUN_ID
//! ```
//! Directors and envoys are binaries built with their flows (see `flspec_federated::director`
//! and `flspec_federated::envoy`); `fed-testbin` is one, with the test flows.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use flspec_federated::certs::{FederationSpec, create_federation};
use flspec_federated::{EnvoyState, FederatedRuntime, TlsConfig};

#[derive(Parser)]
#[command(name = "flspec-fed", about = "Operate an flspec federation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a CA and the certificates of the director, the envoys and a client (reuses
    /// the CA if DIR already has one).
    Certs {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// The director's host name or IP address (repeat for several).
        #[arg(long = "director-host", required = true)]
        director_hosts: Vec<String>,
        /// An envoy's name (repeat for several).
        #[arg(long = "envoy")]
        envoys: Vec<String>,
        /// A client's name (default: one client, `client`).
        #[arg(long = "client")]
        clients: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Lists the director's envoys and their status (OpenFL's `get_envoys()`).
    Envoys {
        /// The director's address, HOST:PORT.
        #[arg(long)]
        director: String,
        /// The federation's certificate folder (uses `client.pem`).
        #[arg(long)]
        certs: Option<PathBuf>,
        /// No TLS (development only).
        #[arg(long)]
        plaintext: bool,
    },
    /// Shows a run's status.
    Status {
        /// The director's address, HOST:PORT.
        #[arg(long)]
        director: String,
        /// The federation's certificate folder (uses `client.pem`).
        #[arg(long)]
        certs: Option<PathBuf>,
        /// No TLS (development only).
        #[arg(long)]
        plaintext: bool,
        /// The run's id.
        #[arg(long)]
        run: String,
    },
}

fn tls(certs: Option<PathBuf>, plaintext: bool) -> Result<TlsConfig, Box<dyn std::error::Error>> {
    match (certs, plaintext) {
        (_, true) => Ok(TlsConfig::insecure_plaintext()),
        (Some(dir), false) => Ok(TlsConfig::from_dir(dir, "client")?),
        (None, false) => Err("give --certs DIR (or --plaintext for a development director)".into()),
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Certs {
            out,
            director_hosts,
            envoys,
            clients,
            days,
        } => {
            let clients = if clients.is_empty() {
                vec!["client".to_string()]
            } else {
                clients
            };
            let spec = FederationSpec {
                director_hosts,
                envoys,
                clients,
                days,
            };
            for path in create_federation(&out, &spec)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Envoys {
            director,
            certs,
            plaintext,
        } => {
            let runtime = FederatedRuntime::connect(&director, tls(certs, plaintext)?)?;
            let envoys = runtime.envoys()?;
            println!(
                "{:<20} {:<8} {:<22} {:>10} {:<20} FLOWS",
                "NAME", "STATUS", "ADDRESS", "SEEN (s)", "RUN"
            );
            for e in envoys {
                let status = match e.state {
                    EnvoyState::Online => "online",
                    EnvoyState::Busy => "busy",
                    EnvoyState::Offline => "offline",
                };
                let flows: Vec<String> = e
                    .flows
                    .iter()
                    .map(|f| format!("{}@{}", f.name, f.fingerprint))
                    .collect();
                println!(
                    "{:<20} {:<8} {:<22} {:>10.1} {:<20} {}{}",
                    e.name,
                    status,
                    e.address,
                    e.last_seen_ms as f64 / 1000.0,
                    e.run_id.as_deref().unwrap_or("-"),
                    flows.join(", "),
                    e.offline_reason
                        .map(|r| format!(" (offline: {r})"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Status {
            director,
            certs,
            plaintext,
            run,
        } => {
            let runtime = FederatedRuntime::connect(&director, tls(certs, plaintext)?)?;
            let s = runtime.run_status(&run)?;
            println!("run:          {}", s.run_id);
            println!("flow:         {}", s.flow);
            println!("phase:        {:?}", s.phase);
            println!("current step: {}", s.current_step.as_deref().unwrap_or("-"));
            println!("steps done:   {}", s.steps_done);
            println!("rounds:       {}", s.rounds);
            println!("participants: {}", s.participants.join(", "));
            if !s.dropped.is_empty() {
                println!("dropped:      {}", s.dropped.join(", "));
            }
            println!("elapsed:      {:.1} s", s.elapsed_ms as f64 / 1000.0);
            if let Some(e) = s.error {
                println!("error:        {e}");
            }
        }
    }
    Ok(())
}
