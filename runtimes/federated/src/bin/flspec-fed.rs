//! `flspec-fed`: certificates for a federation, and the list of a director's envoys.
//!
//! ```text
//! flspec-fed certs --out DIR --director-host 127.0.0.1 --envoy Bengaluru --envoy Portland
//! flspec-fed envoys --director 127.0.0.1:50050 --certs DIR
//! flspec-fed status --director 127.0.0.1:50050 --certs DIR --run RUN_ID
//! flspec-fed fingerprint DIR/envoys/Portland.pem
//! ```
//! Directors and envoys are binaries built with their flows (see `flspec_federated::director`
//! and `flspec_federated::envoy`); `fed-testbin` is one, with the test flows.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use flspec_federated::certs::{FederationSpec, MAX_DAYS, create_federation};
use flspec_federated::{EnvoyState, FederatedRuntime, TlsConfig};

#[derive(Parser)]
#[command(name = "flspec-fed", about = "Operate an flspec federation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a CA and the certificates of the director, the envoys and a client, and each
    /// envoy's SecAgg signing certificate and Ed25519 key (`envoys/NAME.secagg.crt`,
    /// `.secagg.key`). Reuses the CA if DIR already has one; refuses if DIR has `ca.pem`
    /// without `ca.key`, unless `--new-ca`. Every run issues new certificates and keys for
    /// the names given.
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
        /// Validity in days (1 to 36500; the CA gets twice as long).
        #[arg(long, default_value_t = 365,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: u32,
        /// Make a new CA although DIR has a `ca.pem` without its `ca.key` (the key was moved
        /// offline or lost): every certificate the old CA issued stops being accepted. Without
        /// it, bring `ca.key` back to add certificates to the federation. An existing `ca.key`
        /// is never overwritten.
        #[arg(long)]
        new_ca: bool,
    },
    /// Prints the SHA-256 fingerprint of a certificate (64 lowercase hex digits: what a
    /// director's revocation list holds; `openssl x509 -noout -fingerprint -sha256` prints the
    /// same digest with colons).
    Fingerprint {
        /// The certificate, a PEM file.
        cert: PathBuf,
    },
    /// Lists the director's envoys and their status (OpenFL's `get_envoys()`).
    Envoys {
        /// The director's address, HOST:PORT.
        #[arg(long)]
        director: String,
        /// The federation's certificate folder (uses `client.pem`).
        #[arg(long)]
        certs: Option<PathBuf>,
        /// No TLS (development only; not with --certs).
        #[arg(long, conflicts_with = "certs")]
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
        /// No TLS (development only; not with --certs).
        #[arg(long, conflicts_with = "certs")]
        plaintext: bool,
        /// The run's id.
        #[arg(long)]
        run: String,
    },
}

fn tls(certs: Option<PathBuf>, plaintext: bool) -> Result<TlsConfig, Box<dyn std::error::Error>> {
    match (certs, plaintext) {
        (Some(_), true) => Err("give --certs DIR or --plaintext, not both".into()),
        (None, true) => Ok(TlsConfig::insecure_plaintext()),
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
            new_ca,
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
                new_ca,
            };
            for path in create_federation(&out, &spec)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Fingerprint { cert } => {
            let pem = std::fs::read_to_string(&cert)
                .map_err(|e| format!("could not read the certificate {}: {e}", cert.display()))?;
            let fingerprint = flspec_federated::certs::fingerprint(&pem)
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            println!("{fingerprint}");
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
