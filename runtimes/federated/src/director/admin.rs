//! The director's admin address: Prometheus metrics (`/metrics`), liveness (`/healthz`),
//! readiness (`/readyz`) and a read-only dashboard (`/`, see [`super::dashboard`]), over plain
//! HTTP/1.1 on an address of its own
//! ([`DirectorOptions::admin_addr`](super::DirectorOptions::admin_addr)).
//!
//! The admin address has **no authentication and no TLS**: bind it to 127.0.0.1 or to a
//! cluster-internal address (for probes and a Prometheus scraper), never to a public one. It
//! serves only `GET` of the four paths above and answers anything else with 404 or 405. The
//! dashboard shows every client's run ids and flows: one more reason to keep it private.
//!
//! The HTTP server is a small one written here (a request line and headers of at most 8 KiB,
//! one request per connection, `Connection: close`): the admin address needs nothing more, and
//! it keeps the runtime free of an HTTP server dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::Shared;
use crate::wire::{EnvoyState, RunPhase, WireRole};

/// The upper bounds of the step latency histograms, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// The longest request head (request line and headers) the admin server reads.
const MAX_REQUEST_HEAD: usize = 8 << 10;
/// The most admin connections served at once; more wait in the listener's backlog.
const MAX_ADMIN_CONNECTIONS: usize = 16;

/// A latency histogram (Prometheus `histogram`: cumulative buckets, sum, count).
#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The labels of one step's latency: flow, step, role.
type StepKey = (String, String, &'static str);

#[derive(Default)]
struct Counters {
    runs_submitted: u64,
    runs_ended: BTreeMap<&'static str, u64>,
    step_seconds: BTreeMap<StepKey, Histogram>,
    dropouts: BTreeMap<(String, String), u64>,
    bytes_sent: BTreeMap<String, u64>,
    bytes_received: BTreeMap<String, u64>,
    tls_failures: BTreeMap<&'static str, u64>,
}

/// The director's counters since it started. Label values are bounded: flows and steps come
/// from the director's registry, envoy names from registered sessions (at most
/// `max_envoys`, and only verified names under mutual TLS), TLS reasons from a fixed list.
#[derive(Default)]
pub(crate) struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A run was submitted.
    pub(crate) fn run_submitted(&self) {
        self.lock().runs_submitted += 1;
    }

    /// A run ended in `phase`.
    pub(crate) fn run_ended(&self, phase: RunPhase) {
        *self
            .lock()
            .runs_ended
            .entry(phase_label(phase))
            .or_default() += 1;
    }

    /// A step of `flow` finished after `elapsed_us` microseconds.
    pub(crate) fn step_finished(&self, flow: &str, step: &str, role: WireRole, elapsed_us: u64) {
        let role = match role {
            WireRole::Aggregator => "aggregator",
            WireRole::Collaborator => "collaborator",
        };
        self.lock()
            .step_seconds
            .entry((flow.to_string(), step.to_string(), role))
            .or_default()
            .observe(elapsed_us as f64 / 1e6);
    }

    /// A collaborator dropped out of `step` of `flow`.
    pub(crate) fn dropout(&self, flow: &str, step: &str) {
        *self
            .lock()
            .dropouts
            .entry((flow.to_string(), step.to_string()))
            .or_default() += 1;
    }

    /// `bytes` of task state were sent to envoy `name`.
    pub(crate) fn sent(&self, name: &str, bytes: usize) {
        add(&mut self.lock().bytes_sent, name, bytes);
    }

    /// `bytes` of task state came back from envoy `name`.
    pub(crate) fn received(&self, name: &str, bytes: usize) {
        add(&mut self.lock().bytes_received, name, bytes);
    }

    /// A connection was refused before any call: `reason` is one of [`TLS_REASONS`].
    pub(crate) fn tls_failure(&self, reason: &'static str) {
        *self.lock().tls_failures.entry(reason).or_default() += 1;
    }
}

fn add(map: &mut BTreeMap<String, u64>, name: &str, bytes: usize) {
    let n = u64::try_from(bytes).unwrap_or(u64::MAX);
    match map.get_mut(name) {
        Some(total) => *total = total.saturating_add(n),
        None => {
            map.insert(name.to_string(), n);
        }
    }
}

fn phase_label(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Running => "running",
        RunPhase::Finished => "finished",
        RunPhase::Failed => "failed",
        RunPhase::Cancelled => "cancelled",
    }
}

/// The reasons a connection is refused before any call, as the label
/// `flspec_director_tls_handshake_failures_total{reason}` gives them.
pub(crate) const TLS_REASONS: [&str; 9] = [
    "unknown_ca",
    "expired",
    "revoked",
    "no_client_certificate",
    "bad_certificate",
    "plaintext_peer",
    "timeout",
    "protocol",
    "other",
];

/// The label of a failed TLS handshake's error (one of [`TLS_REASONS`]).
pub(crate) fn tls_failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return "other";
    };
    match tls {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature)
        | E::AlertReceived(A::UnknownCA | A::DecryptError) => "unknown_ca",
        E::InvalidCertificate(C::Expired | C::NotValidYet | C::ExpiredContext { .. })
        | E::AlertReceived(A::CertificateExpired) => "expired",
        E::InvalidCertificate(C::Revoked) | E::AlertReceived(A::CertificateRevoked) => "revoked",
        E::NoCertificatesPresented | E::AlertReceived(A::CertificateRequired) => {
            "no_client_certificate"
        }
        E::InvalidCertificate(_) | E::AlertReceived(A::BadCertificate) => "bad_certificate",
        E::InvalidMessage(_)
        | E::PeerIncompatible(_)
        | E::PeerMisbehaved(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => "protocol",
        _ => "other",
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics in Prometheus' text format (version 0.0.4).
pub(super) fn render(shared: &Shared) -> String {
    let mut out = String::new();
    let envoys = shared.envoys.list();
    let count = |state: EnvoyState| envoys.iter().filter(|e| e.state == state).count();
    out.push_str(
        "# HELP flspec_director_envoys Envoys the director knows, by state (online and busy \
         envoys have a session open).\n# TYPE flspec_director_envoys gauge\n",
    );
    for (state, name) in [
        (EnvoyState::Online, "online"),
        (EnvoyState::Busy, "busy"),
        (EnvoyState::Offline, "offline"),
    ] {
        let _ = writeln!(
            out,
            "flspec_director_envoys{{state=\"{name}\"}} {}",
            count(state)
        );
    }
    out.push_str(
        "# HELP flspec_director_envoys_online Envoys with a session open (online or busy).\n\
         # TYPE flspec_director_envoys_online gauge\n",
    );
    let _ = writeln!(
        out,
        "flspec_director_envoys_online {}",
        count(EnvoyState::Online) + count(EnvoyState::Busy)
    );
    let c = shared.metrics.lock();
    out.push_str(
        "# HELP flspec_director_runs Runs by state: `running` now, the others ended since the \
         director started.\n# TYPE flspec_director_runs gauge\n",
    );
    let _ = writeln!(
        out,
        "flspec_director_runs{{state=\"running\"}} {}",
        shared.runs.running()
    );
    for phase in ["finished", "failed", "cancelled"] {
        let _ = writeln!(
            out,
            "flspec_director_runs{{state=\"{phase}\"}} {}",
            c.runs_ended.get(phase).copied().unwrap_or(0)
        );
    }
    out.push_str(
        "# HELP flspec_director_runs_submitted_total Runs accepted since the director started.\n\
         # TYPE flspec_director_runs_submitted_total counter\n",
    );
    let _ = writeln!(
        out,
        "flspec_director_runs_submitted_total {}",
        c.runs_submitted
    );
    out.push_str(
        "# HELP flspec_director_step_seconds How long steps took, by flow, step and role \
         (collaborator steps as their envoys measured them).\n\
         # TYPE flspec_director_step_seconds histogram\n",
    );
    for ((flow, step, role), h) in &c.step_seconds {
        let labels = format!(
            "flow=\"{}\",step=\"{}\",role=\"{role}\"",
            label(flow),
            label(step)
        );
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets.iter()) {
            let _ = writeln!(
                out,
                "flspec_director_step_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "flspec_director_step_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "flspec_director_step_seconds_sum{{{labels}}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "flspec_director_step_seconds_count{{{labels}}} {}",
            h.count
        );
    }
    out.push_str(
        "# HELP flspec_director_dropouts_total Collaborators that dropped out, by flow and step.\n\
         # TYPE flspec_director_dropouts_total counter\n",
    );
    for ((flow, step), n) in &c.dropouts {
        let _ = writeln!(
            out,
            "flspec_director_dropouts_total{{flow=\"{}\",step=\"{}\"}} {n}",
            label(flow),
            label(step)
        );
    }
    for (name, help, map) in [
        (
            "flspec_director_envoy_sent_bytes_total",
            "Task state bytes sent to each envoy.",
            &c.bytes_sent,
        ),
        (
            "flspec_director_envoy_received_bytes_total",
            "Task state bytes received from each envoy.",
            &c.bytes_received,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (envoy, n) in map {
            let _ = writeln!(out, "{name}{{envoy=\"{}\"}} {n}", label(envoy));
        }
    }
    out.push_str(
        "# HELP flspec_director_tls_handshake_failures_total Connections refused before any \
         call, by reason.\n# TYPE flspec_director_tls_handshake_failures_total counter\n",
    );
    for reason in TLS_REASONS {
        let _ = writeln!(
            out,
            "flspec_director_tls_handshake_failures_total{{reason=\"{reason}\"}} {}",
            c.tls_failures.get(reason).copied().unwrap_or(0)
        );
    }
    out
}

/// Whether the director accepts envoys and clients now: its gRPC server runs and it is not
/// shutting down. (Being at `max_envoys` does not make it unready: taking it out of a load
/// balancer would cut off the clients too.)
fn ready(shared: &Shared) -> Result<(), String> {
    if *shared.stopping.borrow() {
        return Err("the director is shutting down".into());
    }
    if shared
        .server_stopped
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err("the director's gRPC server stopped".into());
    }
    Ok(())
}

/// Serves the admin address until the director is gone (its `Shared` dropped) or `stopped`
/// fires.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Weak<Shared>,
    timeout: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "admin address: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let answered = tokio::time::timeout(timeout, answer(stream, &shared)).await;
            if answered.is_err() {
                debug!(%peer, "admin address: a request took over `admin_timeout`; closed");
            }
            drop(permit);
        });
    }
}

/// Reads one request and answers it.
async fn answer(mut stream: TcpStream, shared: &Weak<Shared>) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            let _ = respond(&mut stream, 431, "text/plain", "request head too large\n").await;
            return;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let Some(shared) = shared.upgrade() else {
        let _ = respond(&mut stream, 503, "text/plain", "the director stopped\n").await;
        return;
    };
    let (code, kind, body) = match (method, path) {
        ("GET", "/metrics") => (200, "text/plain; version=0.0.4", render(&shared)),
        ("GET", "/") => (
            200,
            "text/html; charset=utf-8",
            super::dashboard::render(&shared),
        ),
        ("GET", "/healthz") => (200, "text/plain", "ok\n".to_string()),
        ("GET", "/readyz") => match ready(&shared) {
            Ok(()) => (200, "text/plain", "ready\n".to_string()),
            Err(why) => (503, "text/plain", format!("not ready: {why}\n")),
        },
        ("GET", _) => (
            404,
            "text/plain",
            "not found; this admin address serves /, /metrics, /healthz and /readyz\n".to_string(),
        ),
        _ => (
            405,
            "text/plain",
            "only GET is served on the admin address\n".to_string(),
        ),
    };
    drop(shared);
    let _ = respond(&mut stream, code, kind, &body).await;
}

async fn respond(stream: &mut TcpStream, code: u16, kind: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.002);
        h.observe(0.7);
        h.observe(1000.0);
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], 0, "0.002 s is above the 1 ms bucket");
        assert_eq!(h.buckets[1], 1, "0.002 s is in the 5 ms bucket");
        assert_eq!(h.buckets[7], 2, "0.7 s is in the 1 s bucket");
        assert_eq!(
            h.buckets[LATENCY_BUCKETS.len() - 1],
            2,
            "1000 s only in +Inf"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
