//! Folding joins (`input: Input<Self>`): the join runs once per arrival, in fan-out order, so
//! it gives what an `Inputs` join that walks its inputs in order gives, on any number of
//! workers, while the aggregator holds a few collaborators' states at a time instead of all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use flspec::prelude::*;
use flspec::{BoxError, Dropout, Event};
use flspec_local::LocalRuntime;

/// What a collaborator adds in a round (`weight` from the aggregator, its name, the round).
fn local_update(weight: f64, name: &str, round: u32) -> f64 {
    weight * 0.5 + name.len() as f64 * 0.1 + f64::from(round) + 1.0 / (1.0 + name.len() as f64)
}

/// The collaborators that drop out of round 1.
fn drops(name: &str, round: u32) -> bool {
    round == 1 && name.ends_with('3')
}

/// Round 1 fans out to the collaborators in reverse order: a fold follows the list's order.
fn fan_out_list(ctx: &Ctx, round: u32) -> Vec<String> {
    let mut names = ctx.collaborators().to_vec();
    if round == 1 {
        names.reverse();
    }
    names
}

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Folded {
    rounds: u32,
    round: u32,
    weight: f64,
    sum: f64,
    count: u32,
    order: Vec<String>,
    orders: Vec<Vec<String>>,
}

#[flow(tolerate_dropouts)]
impl Folded {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = fan_out_list(ctx, self.round))
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx) -> Result<Next<Self>, BoxError> {
        if drops(ctx.name(), self.round) {
            return Err(Dropout::new("battery low").into());
        }
        self.weight = local_update(self.weight, ctx.name(), self.round);
        Ok(next!(self.add, include = [weight]))
    }

    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.sum += input.weight;
        self.count += 1;
        self.order.push(input.name().to_string());
        next!(self.average)
    }

    #[aggregator]
    fn average(&mut self, ctx: &Ctx) -> Next<Self> {
        self.weight = self.sum / f64::from(self.count);
        self.sum = 0.0;
        self.count = 0;
        self.orders.push(std::mem::take(&mut self.order));
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = fan_out_list(ctx, self.round))
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// The same flow with an `Inputs` join that walks its inputs in order.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Collected {
    rounds: u32,
    round: u32,
    weight: f64,
    orders: Vec<Vec<String>>,
}

#[flow(tolerate_dropouts)]
impl Collected {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = fan_out_list(ctx, self.round))
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx) -> Result<Next<Self>, BoxError> {
        if drops(ctx.name(), self.round) {
            return Err(Dropout::new("battery low").into());
        }
        self.weight = local_update(self.weight, ctx.name(), self.round);
        Ok(next!(self.join, include = [weight]))
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        let mut sum = 0.0;
        for input in &inputs {
            sum += input.weight;
        }
        self.weight = sum / inputs.len() as f64;
        self.orders
            .push(inputs.names().map(str::to_string).collect());
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = fan_out_list(ctx, self.round))
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("site-{i:02}")).collect()
}

#[test]
fn a_fold_gives_what_a_join_gives_in_fan_out_order_on_any_number_of_workers() {
    let sites = names(40);
    for workers in [1, 2, 3] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let local = LocalRuntime::new(sites.clone(), |_| ())
            .parallel(workers)
            .observer(move |e: &Event<'_>| match e {
                Event::Joined { step, inputs } => {
                    seen.lock()
                        .expect("events")
                        .push(format!("joined {step} {inputs}"));
                }
                Event::StepFinished { step: "add", .. } => {
                    seen.lock()
                        .expect("events")
                        .push("add finished".to_string());
                }
                _ => {}
            });
        let folded = Folded {
            rounds: 3,
            ..Folded::default()
        }
        .run(&local)
        .expect("a run");
        let collected = Collected {
            rounds: 3,
            ..Collected::default()
        }
        .run(&local)
        .expect("a run");
        assert_eq!(
            folded.weight.to_bits(),
            collected.weight.to_bits(),
            "workers = {workers}"
        );
        assert_eq!(folded.orders, collected.orders, "workers = {workers}");
        let mut reversed = sites.clone();
        reversed.reverse();
        reversed.retain(|n| !drops(n, 1));
        assert_eq!(folded.orders[0], sites);
        assert_eq!(
            folded.orders[1], reversed,
            "round 1: the list's order, dropouts left out"
        );
        assert_eq!(folded.orders[1].len(), 36);
        // One `Joined` and one `StepFinished` per round for the fold, not one per input.
        let events = events.lock().expect("events");
        let fold_events: Vec<&String> = events.iter().filter(|e| e.contains("add")).collect();
        assert_eq!(
            fold_events,
            [
                "joined add 40",
                "add finished",
                "joined add 36",
                "add finished",
                "joined add 40",
                "add finished"
            ],
            "workers = {workers}"
        );
    }
}

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Fickle {
    seen: u32,
}

#[flow]
impl Fickle {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        next!(self.add)
    }

    /// Moves on differently after the first input: a run error, not a silent choice.
    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.seen += 1 + input.seen;
        if self.seen == 1 {
            next!(self.left)
        } else {
            next!(self.right)
        }
    }

    #[aggregator]
    fn left(&mut self) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn right(&mut self) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn a_fold_that_moves_on_differently_for_another_input_fails_the_run() {
    let local = LocalRuntime::new(names(3), |_| ());
    let err = Fickle::default()
        .run(&local)
        .expect_err("the fold moved on two ways")
        .to_string();
    assert!(
        err.contains("folding join `add` moved on to `left` after input 1 of the fan-out but to `right` after input 2"),
        "{err}"
    );
}

/// Copies of [`Payload`] alive now, and the most alive at once.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// A 1 KiB payload that counts its live copies.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<u8>", into = "Vec<u8>")]
struct Payload(Vec<u8>);

impl Payload {
    fn new(bytes: Vec<u8>) -> Self {
        let live = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(live, Ordering::SeqCst);
        Payload(bytes)
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::new(Vec::new())
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Payload::new(self.0.clone())
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload::new(bytes)
    }
}

impl From<Payload> for Vec<u8> {
    fn from(p: Payload) -> Self {
        p.0.clone()
    }
}

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct HeavyFold {
    payload: Payload,
    total: u64,
}

#[flow]
impl HeavyFold {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.payload = Payload::new(vec![1; 1024]);
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.payload.0[0] = 2;
        next!(self.add, include = [payload])
    }

    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.total += input.payload.0.iter().map(|&b| u64::from(b)).sum::<u64>();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct HeavyJoin {
    payload: Payload,
    total: u64,
}

#[flow]
impl HeavyJoin {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.payload = Payload::new(vec![1; 1024]);
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.payload.0[0] = 2;
        next!(self.join, include = [payload])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs
            .iter()
            .map(|i| i.payload.0.iter().map(|&b| u64::from(b)).sum::<u64>())
            .sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// The most payload copies alive at once during `run`.
fn peak_copies(run: impl FnOnce() -> u64) -> (usize, u64) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let total = run();
    (PEAK.load(Ordering::SeqCst) - before, total)
}

/// One test, so that no other test's payloads count.
#[test]
fn a_folding_fan_out_holds_a_few_collaborators_states_at_once() {
    let n = 3_000;
    let expected = n as u64 * 1025;
    for workers in [1, 2] {
        let local = LocalRuntime::new(names(n), |_| ()).parallel(workers);
        let (fold_peak, total) =
            peak_copies(|| HeavyFold::default().run(&local).expect("a run").total);
        assert_eq!(total, expected);
        let (join_peak, total) =
            peak_copies(|| HeavyJoin::default().run(&local).expect("a run").total);
        assert_eq!(total, expected);
        // An `Inputs` join holds every arrival; a fold at most the workers' window.
        assert!(join_peak >= n, "join, {workers} worker(s): {join_peak}");
        let bound = if workers == 1 { 6 } else { 2 * 4 * 64 + 6 };
        assert!(
            fold_peak <= bound,
            "fold, {workers} worker(s): {fold_peak} copies alive at once (bound {bound})"
        );
        eprintln!("{workers} worker(s): fold peak {fold_peak} copies, join peak {join_peak}");
    }
}

static CRASH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Resumable {
    rounds: u32,
    round: u32,
    value: u64,
    total: u64,
    order: Vec<String>,
}

#[flow]
impl Resumable {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx) -> Result<Next<Self>, BoxError> {
        if self.round == 1 && ctx.name() == "site-02" && CRASH.load(Ordering::SeqCst) {
            return Err("injected crash".into());
        }
        self.value = ctx.name().len() as u64 * 10 + u64::from(self.round);
        Ok(next!(self.add, include = [value]))
    }

    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        // Not commutative: the order of the inputs shows in the total.
        self.total = self.total * 3 + input.value;
        self.order.push(input.name().to_string());
        next!(self.close)
    }

    #[aggregator]
    fn close(&mut self, ctx: &Ctx) -> Next<Self> {
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = ctx.collaborators())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn a_run_that_crashed_during_a_folding_fan_out_resumes_and_folds_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = || LocalRuntime::new(names(5), |_| ()).checkpoint_dir(dir.path());
    let flow = Resumable {
        rounds: 3,
        ..Resumable::default()
    };
    let uninterrupted = flow.clone().run(&runtime()).expect("a whole run");
    let rt = runtime();
    CRASH.store(true, Ordering::SeqCst);
    let crashed = flow.run(&rt).expect_err("the injected crash");
    CRASH.store(false, Ordering::SeqCst);
    assert!(crashed.to_string().contains("injected crash"), "{crashed}");
    let run_id = rt.last_run_id().expect("a run id");
    let resumed: Resumable = rt.resume(&run_id).expect("resumed in round 1's fan-out");
    assert_eq!(resumed, uninterrupted);
    assert_eq!(resumed.order.len(), 15);
}
