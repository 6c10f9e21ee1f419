//! The director's table of envoys: their sessions, the tasks they run, their heartbeats, and
//! the collaborators each hosts (its own name, or the names the hosting list authorises).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tonic::Status;

use crate::wire::{
    BatchTask, DirectorMsg, EnvoyInfo, EnvoyState, FlowInfo, Task, TaskBatch, TaskOutcome,
};

/// What became of a task sent to an envoy.
#[derive(Debug)]
pub(crate) enum RemoteOutcome {
    /// The envoy answered.
    Done(TaskOutcome),
    /// The envoy was lost before it answered.
    Lost(String),
}

/// Where the outcome of a task goes: the fan-out's channel and the task's position in it.
pub(crate) type Reply = UnboundedSender<(usize, RemoteOutcome)>;

/// The sending half of an envoy's session.
pub(crate) type SessionTx = UnboundedSender<Result<DirectorMsg, Status>>;

struct Entry {
    session: u64,
    /// The SHA-256 fingerprint of the envoy's certificate (`None` in plaintext mode).
    fingerprint: Option<String>,
    tx: Option<SessionTx>,
    flows: Vec<FlowInfo>,
    address: String,
    connected_at: Instant,
    last_seen: Instant,
    offline_reason: Option<String>,
    run_id: Option<String>,
    tasks: usize,
    /// The collaborators it hosts (its own name for an envoy of one).
    collaborators: Vec<String>,
}

struct Pending {
    envoy: String,
    session: u64,
    position: usize,
    reply: Reply,
}

#[derive(Default)]
struct Inner {
    envoys: BTreeMap<String, Entry>,
    pending: HashMap<u64, Pending>,
    /// Collaborator → the envoy that hosts it, for envoys hosting others than their own name.
    hosts: HashMap<String, String>,
}

impl Inner {
    /// The envoy that hosts `collaborator`: the one the hosting list maps it to, or the envoy
    /// of that name.
    fn envoy_of<'a>(&'a self, collaborator: &'a str) -> &'a str {
        self.hosts
            .get(collaborator)
            .map_or(collaborator, String::as_str)
    }
}

/// The envoys a director knows. All methods are quick and never block on the network.
#[derive(Default)]
pub(crate) struct Envoys {
    inner: Mutex<Inner>,
    next_session: AtomicU64,
    next_task: AtomicU64,
}

impl Envoys {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an envoy's session, replacing an older session under the same name (an envoy
    /// that restarted); the old session's tasks are reported lost.
    ///
    /// # Errors
    /// `ResourceExhausted` if `max_envoys` other envoys are online already.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register(
        &self,
        name: &str,
        fingerprint: Option<String>,
        flows: Vec<FlowInfo>,
        collaborators: Vec<String>,
        address: String,
        tx: SessionTx,
        max_envoys: usize,
    ) -> Result<u64, Status> {
        let mut inner = self.lock();
        for c in &collaborators {
            let other = inner.envoy_of(c).to_string();
            if other != name
                && inner
                    .envoys
                    .get(&other)
                    .is_some_and(|e| e.tx.is_some() && e.collaborators.contains(c))
            {
                return Err(Status::already_exists(format!(
                    "collaborator `{c}` is hosted by envoy `{other}`, which is online; stop it                      first, or host `{c}` on one envoy only"
                )));
            }
        }
        let replaces = inner.envoys.get(name).is_some_and(|e| e.tx.is_some());
        let online = inner.envoys.values().filter(|e| e.tx.is_some()).count();
        if !replaces && online >= max_envoys {
            return Err(Status::resource_exhausted(format!(
                "the director has {online} envoys connected, its limit \
                 (`DirectorOptions::max_envoys` = {max_envoys}); stop an envoy or raise \
                 `max_envoys` on the director"
            )));
        }
        if !inner.envoys.contains_key(name) && inner.envoys.len() >= max_envoys.saturating_mul(2) {
            forget_oldest_offline(&mut inner);
        }
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        if let Some(old) = inner.envoys.get(name)
            && old.tx.is_some()
        {
            let old_session = old.session;
            tracing::warn!(
                envoy = name,
                "envoy registered again; dropping its previous session"
            );
            fail_pending(
                &mut inner,
                name,
                old_session,
                "the envoy registered again (it restarted)",
            );
        }
        inner.hosts.retain(|_, envoy| envoy != name);
        for c in collaborators.iter().filter(|c| *c != name) {
            inner.hosts.insert(c.clone(), name.to_string());
        }
        inner.envoys.insert(
            name.to_string(),
            Entry {
                session,
                fingerprint,
                tx: Some(tx),
                flows,
                address,
                connected_at: now,
                last_seen: now,
                offline_reason: None,
                run_id: None,
                tasks: 0,
                collaborators,
            },
        );
        Ok(session)
    }

    /// Ends every session, telling each envoy with `status` (its stream ends with it); their
    /// tasks are reported lost. Returns how many were ended.
    pub(crate) fn end_sessions(
        &self,
        status: impl Fn(&str) -> Option<Status>,
        reason: &str,
    ) -> usize {
        let mut inner = self.lock();
        let ended: Vec<(String, u64)> = inner
            .envoys
            .iter_mut()
            .filter_map(|(name, e)| {
                let tx = e.tx.as_ref()?;
                let status = status(name)?;
                let _ = tx.send(Err(status));
                e.tx = None;
                e.offline_reason = Some(reason.to_string());
                e.run_id = None;
                e.tasks = 0;
                Some((name.clone(), e.session))
            })
            .collect();
        for (name, session) in &ended {
            tracing::warn!(envoy = %name, %reason, "envoy session ended by the director");
            fail_pending(&mut inner, name, *session, reason);
        }
        ended.len()
    }

    /// The online envoys whose certificate `revoked` says is revoked.
    pub(crate) fn revoked(&self, revoked: impl Fn(&str) -> bool) -> Vec<String> {
        self.lock()
            .envoys
            .iter()
            .filter(|(_, e)| e.tx.is_some() && e.fingerprint.as_deref().is_some_and(&revoked))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Notes that a session sent something.
    pub(crate) fn seen(&self, name: &str, session: u64) {
        if let Some(e) = self.lock().envoys.get_mut(name)
            && e.session == session
        {
            e.last_seen = Instant::now();
        }
    }

    /// Delivers a task's outcome. Returns `false` if the task is unknown or belongs to another
    /// envoy (a late or forged answer), which is then ignored.
    pub(crate) fn task_done(
        &self,
        name: &str,
        session: u64,
        task: u64,
        outcome: TaskOutcome,
    ) -> bool {
        let mut inner = self.lock();
        let ok = inner
            .pending
            .get(&task)
            .is_some_and(|p| p.envoy == name && p.session == session);
        if !ok {
            return false;
        }
        if let Some(p) = inner.pending.remove(&task) {
            if let Some(e) = inner.envoys.get_mut(name) {
                e.tasks = e.tasks.saturating_sub(1);
                e.last_seen = Instant::now();
            }
            let _ = p.reply.send((p.position, RemoteOutcome::Done(outcome)));
        }
        true
    }

    /// Marks a session lost (its stream ended, or its heartbeats stopped): its tasks are
    /// reported lost with `reason`. Does nothing if a newer session replaced it.
    pub(crate) fn lost(&self, name: &str, session: u64, reason: &str) {
        let mut inner = self.lock();
        let Some(e) = inner.envoys.get_mut(name) else {
            return;
        };
        if e.session != session || e.tx.is_none() {
            return;
        }
        e.tx = None;
        e.offline_reason = Some(reason.to_string());
        e.run_id = None;
        e.tasks = 0;
        tracing::warn!(envoy = name, %reason, "envoy lost");
        fail_pending(&mut inner, name, session, reason);
    }

    /// The envoy that hosts `collaborator` (the envoy of that name unless the hosting list
    /// maps it to another).
    pub(crate) fn envoy_of(&self, collaborator: &str) -> String {
        self.lock().envoy_of(collaborator).to_string()
    }

    /// Sends a message to an envoy's session.
    pub(crate) fn send(&self, name: &str, msg: DirectorMsg) -> Result<(), String> {
        let inner = self.lock();
        let name = inner.envoy_of(name);
        let e = inner
            .envoys
            .get(name)
            .ok_or_else(|| format!("envoy `{name}` never registered"))?;
        let tx = e.tx.as_ref().ok_or_else(|| offline(name, e))?;
        tx.send(Ok(msg))
            .map_err(|_| format!("envoy `{name}`'s session is closing"))
    }

    /// Sends a task to an envoy; its outcome will arrive on `reply` at `position`.
    pub(crate) fn send_task(
        &self,
        name: &str,
        position: usize,
        mut task: Task,
        reply: Reply,
    ) -> Result<u64, String> {
        let id = self.next_task.fetch_add(1, Ordering::Relaxed) + 1;
        task.task = id;
        let mut inner = self.lock();
        let name = inner.envoy_of(name).to_string();
        let name = name.as_str();
        let e = inner
            .envoys
            .get_mut(name)
            .ok_or_else(|| format!("envoy `{name}` never registered"))?;
        let session = e.session;
        let run_id = task.run_id.clone();
        let tx = e.tx.as_ref().ok_or_else(|| offline(name, e))?;
        tx.send(Ok(DirectorMsg::Task(task)))
            .map_err(|_| format!("envoy `{name}`'s session is closing"))?;
        e.tasks += 1;
        e.run_id = Some(run_id);
        inner.pending.insert(
            id,
            Pending {
                envoy: name.to_string(),
                session,
                position,
                reply,
            },
        );
        Ok(id)
    }

    /// Sends one message to envoy `name` with the tasks of several of its collaborators
    /// (`(position, collaborator, parts)`), sharing `shared`; their outcomes arrive on `reply`
    /// at their positions. Returns the task ids.
    ///
    /// # Errors
    /// Why the envoy cannot be reached (every task of the batch is then lost).
    pub(crate) fn send_batch(
        &self,
        name: &str,
        run_id: &str,
        step: &str,
        shared: bytes::Bytes,
        tasks: Vec<(usize, String, bytes::Bytes)>,
        reply: &Reply,
    ) -> Result<Vec<u64>, String> {
        let mut inner = self.lock();
        let e = inner
            .envoys
            .get_mut(name)
            .ok_or_else(|| format!("envoy `{name}` never registered"))?;
        let session = e.session;
        let tx = e.tx.as_ref().ok_or_else(|| offline(name, e))?;
        let mut batch = TaskBatch {
            run_id: run_id.to_string(),
            step: step.to_string(),
            shared,
            tasks: Vec::with_capacity(tasks.len()),
        };
        let mut ids = Vec::with_capacity(tasks.len());
        let mut positions = Vec::with_capacity(tasks.len());
        for (position, collaborator, parts) in tasks {
            let id = self.next_task.fetch_add(1, Ordering::Relaxed) + 1;
            batch.tasks.push(BatchTask {
                task: id,
                collaborator,
                parts,
            });
            ids.push(id);
            positions.push(position);
        }
        tx.send(Ok(DirectorMsg::Tasks(batch)))
            .map_err(|_| format!("envoy `{name}`'s session is closing"))?;
        e.tasks += ids.len();
        e.run_id = Some(run_id.to_string());
        for (&id, position) in ids.iter().zip(positions) {
            inner.pending.insert(
                id,
                Pending {
                    envoy: name.to_string(),
                    session,
                    position,
                    reply: reply.clone(),
                },
            );
        }
        Ok(ids)
    }

    /// Forgets tasks whose fan-out gave up on them (deadline, cancellation).
    pub(crate) fn forget(&self, tasks: &[u64]) {
        let mut inner = self.lock();
        for t in tasks {
            if let Some(p) = inner.pending.remove(t)
                && let Some(e) = inner.envoys.get_mut(&p.envoy)
            {
                e.tasks = e.tasks.saturating_sub(1);
            }
        }
    }

    /// Marks lost every session silent for longer than `timeout`; returns how many.
    pub(crate) fn check_heartbeats(&self, timeout: Duration) -> usize {
        let stale: Vec<(String, u64)> = self
            .lock()
            .envoys
            .iter()
            .filter(|(_, e)| e.tx.is_some() && e.last_seen.elapsed() > timeout)
            .map(|(n, e)| (n.clone(), e.session))
            .collect();
        for (name, session) in &stale {
            self.lost(
                name,
                *session,
                &format!("no heartbeat for {} s", timeout.as_secs_f32()),
            );
        }
        stale.len()
    }

    /// Clears the run an envoy works for, once the run ended.
    pub(crate) fn run_ended(&self, name: &str, run_id: &str) {
        let mut inner = self.lock();
        let name = inner.envoy_of(name).to_string();
        if let Some(e) = inner.envoys.get_mut(&name)
            && e.run_id.as_deref() == Some(run_id)
        {
            e.run_id = None;
        }
    }

    /// The envoys, by name.
    pub(crate) fn list(&self) -> Vec<EnvoyInfo> {
        let inner = self.lock();
        inner
            .envoys
            .iter()
            .map(|(name, e)| EnvoyInfo {
                name: name.clone(),
                state: match (&e.tx, e.tasks) {
                    (None, _) => EnvoyState::Offline,
                    (Some(_), 0) => EnvoyState::Online,
                    (Some(_), _) => EnvoyState::Busy,
                },
                address: e.address.clone(),
                flows: e.flows.clone(),
                last_seen_ms: millis(e.last_seen.elapsed()),
                connected_ms: millis(e.connected_at.elapsed()),
                offline_reason: e.offline_reason.clone(),
                run_id: e.run_id.clone(),
            })
            .collect()
    }

    /// The collaborators of the online envoys that have flow `flow` (any version), sorted.
    pub(crate) fn online_with(&self, flow: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock()
            .envoys
            .values()
            .filter(|e| e.tx.is_some() && e.flows.iter().any(|f| f.name == flow))
            .flat_map(|e| e.collaborators.iter().cloned())
            .collect();
        names.sort();
        names
    }

    /// Checks that the envoy of collaborator `name` is online and has `flow` in the same
    /// version.
    pub(crate) fn check(&self, name: &str, flow: &FlowInfo) -> Result<(), crate::Error> {
        let inner = self.lock();
        let refuse = |reason: String| crate::Error::Refused {
            name: name.to_string(),
            reason,
        };
        let envoy = inner.envoy_of(name);
        let Some(e) = inner.envoys.get(envoy) else {
            return Err(refuse(format!(
                "no envoy named `{name}` has registered; start it, or check `flspec-fed envoys`"
            )));
        };
        if e.tx.is_none() {
            return Err(refuse(offline(envoy, e)));
        }
        if !e.collaborators.iter().any(|c| c == name) {
            return Err(refuse(format!(
                "envoy `{envoy}` does not host collaborator `{name}`"
            )));
        }
        match e.flows.iter().find(|f| f.name == flow.name) {
            None => Err(crate::Error::UnknownFlow {
                flow: flow.name.clone(),
                who: format!("envoy `{name}`"),
                known: e
                    .flows
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            Some(f) if f.fingerprint != flow.fingerprint => {
                Err(crate::Error::FingerprintMismatch {
                    flow: flow.name.clone(),
                    here: "the director".into(),
                    ours: flow.fingerprint.clone(),
                    who: format!("envoy `{name}`"),
                    theirs: f.fingerprint.clone(),
                })
            }
            Some(_) => Ok(()),
        }
    }
}

/// Forgets the offline envoy seen longest ago, so that the table stays bounded.
fn forget_oldest_offline(inner: &mut Inner) {
    let oldest = inner
        .envoys
        .iter()
        .filter(|(_, e)| e.tx.is_none())
        .min_by_key(|(_, e)| e.last_seen)
        .map(|(n, _)| n.clone());
    if let Some(name) = oldest {
        inner.envoys.remove(&name);
    }
}

fn offline(name: &str, e: &Entry) -> String {
    match &e.offline_reason {
        Some(r) => format!("envoy `{name}` is offline ({r})"),
        None => format!("envoy `{name}` is offline"),
    }
}

fn fail_pending(inner: &mut Inner, name: &str, session: u64, reason: &str) {
    let ids: Vec<u64> = inner
        .pending
        .iter()
        .filter(|(_, p)| p.envoy == name && p.session == session)
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        if let Some(p) = inner.pending.remove(&id) {
            let _ = p
                .reply
                .send((p.position, RemoteOutcome::Lost(reason.to_string())));
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
