//! Flows shared by the test binary `fed-testbin` and the integration tests.
#![allow(dead_code, missing_docs)]

use std::time::Duration;

use flspec::prelude::*;
use flspec_federated::Registry;

/// A value that lives only in a collaborator's private state. Tests prove it never appears in
/// the bytes on the wire.
pub fn private_marker(name: &str) -> String {
    format!("PRIVATE-MARKER-{name}-7f3a9c")
}

/// A value that lives only in the aggregator's private state.
pub const AGGREGATOR_MARKER: &str = "AGGREGATOR-PRIVATE-MARKER-51d0";

/// A value that travels in the shared state (proves the recording sees payloads).
pub const SHARED_MARKER: &str = "SHARED-VISIBLE-VALUE-0b7e";

/// A site's private state.
pub struct Site {
    pub secret: u64,
    pub marker: String,
    pub visits: u32,
}

impl Site {
    pub fn new(name: &str) -> Self {
        Site {
            secret: name.bytes().map(u64::from).sum(),
            marker: private_marker(name),
            visits: 0,
        }
    }
}

/// The aggregator's private state.
pub struct AggSecret {
    pub marker: String,
}

impl AggSecret {
    pub fn new() -> Self {
        AggSecret {
            marker: AGGREGATOR_MARKER.to_string(),
        }
    }
}

/// Fan-out to every collaborator and a join.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct FanOutFlow {
    pub greeting: String,
    pub value: u64,
    pub marker_len: usize,
    pub total: u64,
    pub names: Vec<String>,
    pub agg_marker_len: usize,
}

#[flow(collaborator = Site, aggregator = AggSecret)]
impl FanOutFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, agg: &mut AggSecret) -> Next<Self> {
        self.greeting = SHARED_MARKER.to_string();
        self.agg_marker_len = agg.marker.len();
        next!(self.contribute, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn contribute(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
        tracing::info!(site = ctx.name(), "contributing to the sum");
        self.value = site.secret * 2 + ctx.name().len() as u64;
        self.marker_len = site.marker.len();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs.iter().map(|i| i.value + i.marker_len as u64).sum();
        self.names = inputs.names().map(str::to_string).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// [`LoopFlow`] with a folding join: `add` takes each site's update in fan-out order (the
/// order shows in `order` and in the non-commutative `digest`), then `average` moves on.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldFlow {
    pub rounds: u32,
    pub round: u32,
    pub model: f64,
    pub local: f64,
    pub sum: f64,
    pub count: u32,
    pub digest: u64,
    pub order: Vec<String>,
}

#[flow(collaborator = Site)]
impl FoldFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        if self.rounds == 0 {
            self.rounds = 3;
        }
        next!(self.train, foreach = ctx.collaborators(), include = [model])
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Next<Self> {
        self.local = self.model * 0.5 + site.secret as f64 / 100.0;
        next!(self.add, include = [local])
    }

    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.sum += input.local;
        self.count += 1;
        self.digest = self
            .digest
            .wrapping_mul(31)
            .wrapping_add(input.local.to_bits());
        self.order.push(input.name().to_string());
        next!(self.average)
    }

    #[aggregator]
    fn average(&mut self, ctx: &Ctx) -> Next<Self> {
        self.model = self.sum / f64::from(self.count);
        self.sum = 0.0;
        self.count = 0;
        self.round += 1;
        if self.round < self.rounds {
            // Later rounds in reverse order: the fold follows the list.
            let mut names = ctx.collaborators().to_vec();
            names.reverse();
            next!(self.train, foreach = names, include = [model])
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Three rounds of fan-out and join; the sites keep a visit count in private state.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopFlow {
    pub rounds: u32,
    pub round: u32,
    pub model: f64,
    pub local: f64,
    pub visits: u32,
    pub history: Vec<f64>,
}

#[flow(collaborator = Site)]
impl LoopFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        if self.rounds == 0 {
            self.rounds = 3;
        }
        next!(
            self.train,
            foreach = ctx.collaborators(),
            exclude = [history]
        )
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Next<Self> {
        site.visits += 1;
        self.visits = site.visits;
        self.local = self.model * 0.5 + site.secret as f64 / 100.0;
        next!(self.validate)
    }

    #[collaborator]
    fn validate(&mut self) -> Next<Self> {
        self.local += 0.25;
        next!(self.join, include = [local, visits])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.model = inputs.iter().map(|i| i.local).sum::<f64>() / inputs.len() as f64;
        self.visits = inputs.iter().map(|i| i.visits).sum();
        self.history.push(self.model);
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = inputs.names(), exclude = [history])
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// The four fields, read through a function so that `#[flow]` does not see the reads: this
/// flow reads fields a transition dropped on purpose, to prove they arrive as their default.
fn abcd(s: &FilterFlow) -> [u32; 4] {
    [s.a, s.b, s.c, s.d]
}

/// `exclude`/`include` on every kind of transition.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterFlow {
    pub a: u32,
    pub b: u32,
    pub c: u32,
    pub d: u32,
    pub seen_by_collab: Vec<u32>,
    pub seen_by_join: Vec<u32>,
}

#[flow]
impl FilterFlow {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        self.a = 10;
        self.b = 20;
        next!(self.middle, exclude = [a])
    }

    #[aggregator]
    fn middle(&mut self, ctx: &Ctx) -> Next<Self> {
        self.a += 1;
        self.c = 30;
        self.d = 40;
        next!(self.first, foreach = ctx.collaborators(), include = [b, c])
    }

    #[collaborator]
    fn first(&mut self) -> Next<Self> {
        self.seen_by_collab = abcd(self).to_vec();
        self.a = 1;
        self.d = 4;
        next!(self.second, exclude = [a])
    }

    #[collaborator]
    fn second(&mut self) -> Next<Self> {
        self.seen_by_collab.extend(abcd(self));
        self.b += 100;
        next!(self.join, exclude = [c])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        for i in &inputs {
            self.seen_by_join.extend(abcd(i));
            self.seen_by_join.extend(i.seen_by_collab.iter().copied());
        }
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// A fan-out to a subset of the collaborators, then to all of them.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubsetFlow {
    pub picked: Vec<String>,
    pub value: u64,
    pub first: Vec<(String, u64)>,
    pub second: Vec<(String, u64)>,
}

#[flow(collaborator = Site)]
impl SubsetFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.picked = ctx.collaborators().iter().rev().take(1).cloned().collect();
        next!(self.work, foreach = self.picked.clone())
    }

    #[collaborator]
    fn work(&mut self, site: &mut Site) -> Next<Self> {
        site.visits += 1;
        self.value = site.secret + u64::from(site.visits) * 1000;
        next!(self.join_some)
    }

    #[aggregator]
    fn join_some(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        self.first = inputs
            .iter()
            .map(|i| (i.name().to_string(), i.value))
            .collect();
        next!(self.work_all, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn work_all(&mut self, site: &mut Site) -> Next<Self> {
        site.visits += 1;
        self.value = site.secret + u64::from(site.visits) * 1000;
        next!(self.join_all)
    }

    #[aggregator]
    fn join_all(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.second = inputs
            .iter()
            .map(|i| (i.name().to_string(), i.value))
            .collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// One collaborator (`slow`) sleeps in its step, so a test can kill its envoy meanwhile. Does
/// not tolerate dropouts.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowFlow {
    pub slow: String,
    pub sleep_ms: u64,
    pub arrived: Vec<String>,
}

#[flow]
impl SlowFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.work, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn work(&mut self, ctx: &Ctx) -> Next<Self> {
        if ctx.name() == self.slow {
            std::thread::sleep(Duration::from_millis(self.sleep_ms));
        }
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.arrived = inputs.names().map(str::to_string).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// As [`SlowFlow`], tolerating dropouts.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowDropFlow {
    pub slow: String,
    pub sleep_ms: u64,
    pub arrived: Vec<String>,
}

#[flow(tolerate_dropouts)]
impl SlowDropFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.work, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn work(&mut self, ctx: &Ctx) -> Next<Self> {
        if ctx.name() == self.slow {
            std::thread::sleep(Duration::from_millis(self.sleep_ms));
        }
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.arrived = inputs.names().map(str::to_string).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// A state with a large payload (sent to every collaborator and back), for the benchmark.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct PayloadFlow {
    pub rounds: u32,
    pub round: u32,
    pub payload: bytes::Bytes,
    pub seen: u64,
    pub checksum: u64,
}

#[flow]
impl PayloadFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.touch, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn touch(&mut self) -> Next<Self> {
        self.seen =
            self.payload.len() as u64 + u64::from(self.payload.last().copied().unwrap_or(0));
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        self.checksum += inputs
            .iter()
            .map(|i| i.seen + i.payload.len() as u64)
            .sum::<u64>();
        self.round += 1;
        if self.round < self.rounds {
            next!(self.touch, foreach = ctx.collaborators())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Another version of [`FanOutFlow`] (one more step): a participant built with it has another
/// fingerprint.
pub mod v2 {
    use flspec::prelude::*;

    use super::{AggSecret, Site};

    #[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    pub struct FanOutFlow {
        pub greeting: String,
        pub value: u64,
        pub marker_len: usize,
        pub total: u64,
        pub names: Vec<String>,
        pub agg_marker_len: usize,
    }

    #[flow(collaborator = Site, aggregator = AggSecret)]
    impl FanOutFlow {
        #[aggregator]
        fn start(&mut self, ctx: &Ctx) -> Next<Self> {
            next!(self.contribute, foreach = ctx.collaborators())
        }

        #[collaborator]
        fn contribute(&mut self, site: &mut Site) -> Next<Self> {
            self.value = site.secret;
            next!(self.double)
        }

        #[collaborator]
        fn double(&mut self) -> Next<Self> {
            self.value *= 2;
            next!(self.join)
        }

        #[aggregator]
        fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
            self.total = inputs.iter().map(|i| i.value).sum();
            next!(self.end)
        }

        #[aggregator]
        fn end(&mut self) {}
    }
}

/// An addressed field: each collaborator receives only its own entry of `inbox`.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct MailFlow {
    pub inbox: PerCollaborator<String>,
    pub seen: Vec<String>,
    pub received: Vec<(String, Vec<String>)>,
}

#[flow(addressed = [inbox])]
impl MailFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        for name in ctx.collaborators() {
            self.inbox.insert(name.clone(), format!("for {name}"));
        }
        next!(self.read, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn read(&mut self) -> Next<Self> {
        self.seen = self.inbox.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        next!(self.join, exclude = [inbox])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.received = inputs
            .iter()
            .map(|i| (i.name().to_string(), i.seen.clone()))
            .collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// A field of a join's input that its transition does not carry, read through a function so
/// that `#[flow]` does not see the read (the trust tests check that it stays empty).
fn leak_of(s: &TrustFlow) -> String {
    s.leak.clone()
}

/// Two fan-outs with a join each; the first carries back only `value`. The trust tests send it
/// answers from a modified envoy: a `leak` that the transition into `join` does not carry, or
/// a join (`join2`, `end`) the first fan-out cannot reach.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrustFlow {
    pub value: u64,
    pub leak: String,
    pub total: u64,
    pub leaks: Vec<String>,
    pub second: Vec<u64>,
}

#[flow]
impl TrustFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.work, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn work(&mut self) -> Next<Self> {
        self.value = 7;
        next!(self.join, include = [value])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs.iter().map(|i| i.value).sum();
        self.leaks = inputs
            .iter()
            .map(|i| leak_of(i))
            .filter(|leak| !leak.is_empty())
            .collect();
        next!(self.work2, foreach = inputs.names())
    }

    #[collaborator]
    fn work2(&mut self) -> Next<Self> {
        self.value += 1;
        next!(self.join2)
    }

    #[aggregator]
    fn join2(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.second = inputs.iter().map(|i| i.value).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// A collaborator step that reaches its join through two transitions carrying different
/// fields (`value` only, or `value` and `note`), chosen at run time: the director cannot know
/// which one an envoy's collaborator took.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct BranchFlow {
    pub value: u64,
    pub note: String,
    pub leak: String,
    pub total: u64,
    pub notes: Vec<String>,
    pub leaks: Vec<String>,
}

fn branch_leak_of(s: &BranchFlow) -> String {
    s.leak.clone()
}

#[flow]
impl BranchFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.work, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn work(&mut self) -> Next<Self> {
        self.value = 7;
        if self.total == 0 {
            next!(self.join, include = [value])
        } else {
            self.note = "noted".into();
            next!(self.join, include = [value, note])
        }
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs.iter().map(|i| i.value).sum();
        self.notes = inputs.iter().map(|i| i.note.clone()).collect();
        self.leaks = inputs.iter().map(|i| branch_leak_of(i)).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Rounds of fan-out and join that tolerate dropouts, for the network-fault tests: in the first
/// round `slow` sleeps `sleep_ms` in its step (so a test can cut its link meanwhile); every join
/// records who arrived and, before the next round, waits `pause_ms` (an aggregation that takes
/// time, during which a healed envoy registers again). Each round invites every collaborator.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundsDropFlow {
    pub rounds: u32,
    pub round: u32,
    pub slow: String,
    pub sleep_ms: u64,
    pub pause_ms: u64,
    pub arrived: Vec<Vec<String>>,
}

#[flow(tolerate_dropouts)]
impl RoundsDropFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(
            self.work,
            foreach = ctx.collaborators(),
            exclude = [arrived]
        )
    }

    #[collaborator]
    fn work(&mut self, ctx: &Ctx) -> Next<Self> {
        if self.round == 0 && ctx.name() == self.slow {
            std::thread::sleep(Duration::from_millis(self.sleep_ms));
        }
        next!(self.join, include = [round])
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        self.arrived
            .push(inputs.names().map(str::to_string).collect());
        self.round += 1;
        if self.round < self.rounds {
            std::thread::sleep(Duration::from_millis(self.pause_ms));
            next!(
                self.work,
                foreach = ctx.collaborators(),
                exclude = [arrived]
            )
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Rounds of fan-out and join that take time on both sides (a collaborator's `train` sleeps
/// `work_ms`, the aggregator's `join` sleeps `agg_ms`), so that a test can kill the director
/// inside a step of either. The result depends on the shared state and the sites' fixed
/// secrets only: a resumed run must end exactly as an uninterrupted one.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryFlow {
    pub rounds: u32,
    pub round: u32,
    pub work_ms: u64,
    pub agg_ms: u64,
    pub model: f64,
    pub local: f64,
    pub history: Vec<f64>,
    pub arrived: Vec<Vec<String>>,
}

#[flow(collaborator = Site, tolerate_dropouts)]
impl RecoveryFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(
            self.train,
            foreach = ctx.collaborators(),
            exclude = [history, arrived]
        )
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Next<Self> {
        std::thread::sleep(Duration::from_millis(self.work_ms));
        self.local = self.model * 0.5 + site.secret as f64 / 100.0 + f64::from(self.round);
        next!(self.join, include = [local])
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        std::thread::sleep(Duration::from_millis(self.agg_ms));
        self.model = inputs.iter().map(|i| i.local).sum::<f64>() / inputs.len().max(1) as f64;
        self.history.push(self.model);
        self.arrived
            .push(inputs.names().map(str::to_string).collect());
        self.round += 1;
        if self.round < self.rounds {
            next!(
                self.train,
                foreach = ctx.collaborators(),
                exclude = [history, arrived]
            )
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// The test flows for envoys (`variant` `v2` swaps in the other version of `FanOutFlow`).
pub fn envoy_registry(variant: Option<&str>) -> Registry {
    let r = Registry::new()
        .flow::<LoopFlow>(Site::new)
        .flow::<FilterFlow>(|_| ())
        .flow::<SubsetFlow>(Site::new)
        .flow::<SlowFlow>(|_| ())
        .flow::<SlowDropFlow>(|_| ())
        .flow::<RoundsDropFlow>(|_| ())
        .flow::<PayloadFlow>(|_| ())
        .flow::<MailFlow>(|_| ())
        .flow::<TrustFlow>(|_| ())
        .flow::<BranchFlow>(|_| ())
        .flow::<RecoveryFlow>(Site::new)
        .flow::<FoldFlow>(Site::new);
    match variant {
        Some("v2") => r.flow::<v2::FanOutFlow>(Site::new),
        _ => r.flow::<FanOutFlow>(Site::new),
    }
}

/// The test flows for the director.
pub fn director_registry() -> Registry {
    Registry::new()
        .aggregator::<FanOutFlow>(AggSecret::new)
        .aggregator::<LoopFlow>(|| ())
        .aggregator::<FilterFlow>(|| ())
        .aggregator::<SubsetFlow>(|| ())
        .aggregator::<SlowFlow>(|| ())
        .aggregator::<SlowDropFlow>(|| ())
        .aggregator::<RoundsDropFlow>(|| ())
        .aggregator::<PayloadFlow>(|| ())
        .aggregator::<MailFlow>(|| ())
        .aggregator::<TrustFlow>(|| ())
        .aggregator::<BranchFlow>(|| ())
        .aggregator::<RecoveryFlow>(|| ())
        .aggregator::<FoldFlow>(|| ())
}
