//! `flspec-fed`: certificates for a federation, and an operator's view of a director (its
//! envoys, the runs this client submitted, their status and logs, cancellation), over the
//! federation's mutual TLS with a client certificate.
//!
//! ```text
//! flspec-fed certs --out DIR --director-host 127.0.0.1 --envoy Bengaluru --envoy Portland
//! flspec-fed envoys --director 127.0.0.1:50050 --certs DIR [--json]
//! flspec-fed runs   --director 127.0.0.1:50050 --certs DIR [--json]
//! flspec-fed status RUN_ID --director 127.0.0.1:50050 --certs DIR [--json]
//! flspec-fed logs   RUN_ID --director 127.0.0.1:50050 --certs DIR [--follow] [--json]
//! flspec-fed cancel RUN_ID --director 127.0.0.1:50050 --certs DIR [--json]
//! flspec-fed fingerprint DIR/envoys/Portland.pem
//! ```
//! `--json` prints one JSON document (`logs`: one JSON object per line) with the fields of
//! the wire types ([`flspec_federated::wire`]).
//! Directors and envoys are binaries built with their flows (see `flspec_federated::director`
//! and `flspec_federated::envoy`); `fed-testbin` is one, with the test flows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use flspec_federated::certs::{FederationSpec, MAX_DAYS, create_federation};
use flspec_federated::wire::{RunUpdate, WireError, WireEvent};
use flspec_federated::{EnvoyInfo, EnvoyState, FederatedRuntime, RunStatus, TlsConfig};

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
        #[command(flatten)]
        director: Director,
    },
    /// Lists the runs this client submitted that the director keeps (running, and the 64
    /// most recently ended).
    Runs {
        #[command(flatten)]
        director: Director,
    },
    /// Shows a run's status.
    Status {
        /// The run's id (or `--run ID`).
        #[arg(required_unless_present = "run_flag", conflicts_with = "run_flag")]
        run: Option<String>,
        /// The run's id.
        #[arg(long = "run", value_name = "RUN")]
        run_flag: Option<String>,
        #[command(flatten)]
        director: Director,
    },
    /// Prints a run's log: its envoys' log lines, its events and its end, as the director
    /// keeps them (the newest 16 MiB per run).
    Logs {
        /// The run's id.
        run: String,
        /// Wait for new lines and print them until the run ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        director: Director,
    },
    /// Cancels a run: it stops at its next fan-out (a step that is running finishes first).
    Cancel {
        /// The run's id.
        run: String,
        #[command(flatten)]
        director: Director,
    },
}

/// How to reach the director, and how to print.
#[derive(Args)]
struct Director {
    /// The director's address, HOST:PORT.
    #[arg(long)]
    director: String,
    /// The federation's certificate folder (uses `client.pem`).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// No TLS (development only; not with --certs).
    #[arg(long, conflicts_with = "certs")]
    plaintext: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Director {
    fn connect(&self) -> Result<FederatedRuntime, Box<dyn std::error::Error>> {
        Ok(FederatedRuntime::connect(
            &self.director,
            tls(self.certs.clone(), self.plaintext)?,
        )?)
    }
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
        Command::Envoys { director } => {
            let envoys = director.connect()?.envoys()?;
            if director.json {
                println!("{}", serde_json::to_string_pretty(&envoys)?);
            } else {
                print_envoys(&envoys);
            }
        }
        Command::Runs { director } => {
            let runs = director.connect()?.runs()?;
            if director.json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print_runs(&runs);
            }
        }
        Command::Status {
            run,
            run_flag,
            director,
        } => {
            let run = run.or(run_flag).ok_or("give the run's id")?;
            let s = director.connect()?.run_status(&run)?;
            if director.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s);
            }
        }
        Command::Logs {
            run,
            follow,
            director,
        } => {
            let runtime = director.connect()?;
            let mut failed = None;
            runtime.run_logs(&run, follow, |update| {
                if director.json {
                    match serde_json::to_string(&update) {
                        Ok(line) => println!("{line}"),
                        Err(e) => failed = Some(e),
                    }
                } else {
                    println!("{}", log_line(&update));
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Command::Cancel { run, director } => {
            let was_running = director.connect()?.cancel_run(&run)?;
            if director.json {
                println!(
                    "{}",
                    serde_json::json!({ "run_id": run, "was_running": was_running })
                );
            } else if was_running {
                println!("cancelling {run}: it stops at its next fan-out");
            } else {
                println!("{run} had already ended");
            }
        }
    }
    Ok(())
}

fn print_envoys(envoys: &[EnvoyInfo]) {
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
                .as_ref()
                .map(|r| format!(" (offline: {r})"))
                .unwrap_or_default()
        );
    }
}

fn phase(s: &RunStatus) -> String {
    format!("{:?}", s.phase).to_lowercase()
}

fn print_runs(runs: &[RunStatus]) {
    println!(
        "{:<36} {:<24} {:<10} {:<16} {:>6} {:>6} {:>10}  DROPPED",
        "RUN", "FLOW", "STATE", "STEP", "STEPS", "ROUNDS", "ELAPSED(s)"
    );
    for r in runs {
        println!(
            "{:<36} {:<24} {:<10} {:<16} {:>6} {:>6} {:>10.1}  {}",
            r.run_id,
            r.flow,
            phase(r),
            r.current_step.as_deref().unwrap_or("-"),
            r.steps_done,
            r.rounds,
            r.elapsed_ms as f64 / 1000.0,
            if r.dropped.is_empty() {
                "-".to_string()
            } else {
                r.dropped.join(",")
            }
        );
    }
}

fn print_status(s: &RunStatus) {
    println!("run:          {}", s.run_id);
    println!("flow:         {}", s.flow);
    println!("state:        {}", phase(s));
    println!("current step: {}", s.current_step.as_deref().unwrap_or("-"));
    println!("steps done:   {}", s.steps_done);
    println!("rounds:       {}", s.rounds);
    println!("participants: {}", s.participants.join(", "));
    if !s.dropped.is_empty() {
        println!("dropped:      {}", s.dropped.join(", "));
    }
    println!("elapsed:      {:.1} s", s.elapsed_ms as f64 / 1000.0);
    if let Some(e) = &s.error {
        println!("error:        {e}");
    }
}

/// One update of a run's log, as one human-readable line.
fn log_line(update: &RunUpdate) -> String {
    match update {
        RunUpdate::Log { source, line } => {
            format!(
                "{source:<16} {:<5} {}: {}",
                line.level, line.target, line.message
            )
        }
        RunUpdate::Event { source, event } => {
            let what = match event {
                WireEvent::RunStarted { collaborators, .. } => {
                    format!("run started with {collaborators} collaborators")
                }
                WireEvent::StepStarted {
                    step, participant, ..
                } => format!("step `{step}` started on {participant}"),
                WireEvent::StepFinished {
                    step,
                    participant,
                    elapsed_us,
                    ..
                } => format!(
                    "step `{step}` finished on {participant} in {:.3} s",
                    *elapsed_us as f64 / 1e6
                ),
                WireEvent::FanOut {
                    step,
                    collaborators,
                } => format!("fan-out to `{step}` on {collaborators} collaborators"),
                WireEvent::Dropped {
                    step,
                    participant,
                    reason,
                } => format!("{participant} dropped out of `{step}`: {reason}"),
                WireEvent::Joined { step, inputs } => format!("join `{step}` with {inputs} inputs"),
                WireEvent::Resumed {
                    after_step,
                    recovered,
                } => format!("resumed after `{after_step}` ({recovered} collaborators recovered)"),
                WireEvent::RunFinished { elapsed_us } => {
                    format!("run finished in {:.3} s", *elapsed_us as f64 / 1e6)
                }
            };
            format!("{source:<16} EVENT {what}")
        }
        RunUpdate::Finished { .. } => "director         END   finished".to_string(),
        RunUpdate::Cancelled => "director         END   cancelled".to_string(),
        RunUpdate::Failed { error } => {
            let message = match error {
                WireError::StepFailed { message, .. }
                | WireError::StepPanicked { message, .. }
                | WireError::Other { message } => message,
            };
            format!("director         END   failed: {message}")
        }
    }
}
