//! Populations: a run over a numbered population builds a collaborator's private state only when
//! a fan-out names it, keeps at most `private_state_cache(n)` of them, rebuilds an evicted one
//! through the factory, and samples a round of a million-strong population in the time of the
//! sample.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flspec::fl::sampling::{ClientSampler, SamplingError};
use flspec::prelude::*;
use flspec::runtime::Population;
use flspec::{Error, Event};
use flspec_local::LocalRuntime;

/// Each round fans out to `plan[round]` if given, else to a sample of `sample` collaborators.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Rounds {
    rounds: u32,
    round: u32,
    seed: u64,
    sample: usize,
    plan: Vec<Vec<String>>,
    visits: u32,
    /// Per round: (name, how many times this run's state of it has been visited).
    seen: Vec<Vec<(String, u32)>>,
}

/// A collaborator's private state; counts how often it has been visited since it was built.
struct Site {
    visits: u32,
    live: Arc<AtomicUsize>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Rounds {
    fn targets(&self, ctx: &Ctx) -> Result<Vec<String>, SamplingError> {
        match self.plan.get(self.round as usize) {
            Some(names) => Ok(names.clone()),
            None => {
                let sampler = ClientSampler::new(self.seed)
                    .fraction(0.0)
                    .min_clients(self.sample)
                    .min_available(1);
                ctx.roster().sample(&sampler, u64::from(self.round))
            }
        }
    }
}

#[flow(collaborator = Site)]
impl Rounds {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Result<Next<Self>, SamplingError> {
        let targets = self.targets(ctx)?;
        Ok(next!(self.visit, foreach = targets, exclude = [seen, plan]))
    }

    #[collaborator]
    fn visit(&mut self, site: &mut Site) -> Next<Self> {
        site.visits += 1;
        self.visits = site.visits;
        next!(self.join, include = [visits])
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Result<Next<Self>, SamplingError> {
        self.seen.push(
            inputs
                .iter()
                .map(|i| (i.name().to_string(), i.visits))
                .collect(),
        );
        self.round += 1;
        if self.round < self.rounds {
            let targets = self.targets(ctx)?;
            Ok(next!(self.visit, foreach = targets, exclude = [seen, plan]))
        } else {
            Ok(next!(self.end))
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Counts the factory's calls and the states alive.
#[derive(Clone, Default)]
struct Counters {
    built: Arc<Mutex<Vec<String>>>,
    live: Arc<AtomicUsize>,
}

impl Counters {
    fn factory(&self) -> impl Fn(&str) -> Site + Send + Sync + 'static {
        let me = self.clone();
        move |name: &str| {
            me.built
                .lock()
                .expect("no test thread panics holding the lock")
                .push(name.to_string());
            me.live.fetch_add(1, Ordering::SeqCst);
            Site {
                visits: 0,
                live: Arc::clone(&me.live),
            }
        }
    }

    fn builds(&self) -> usize {
        self.built.lock().expect("not poisoned").len()
    }
}

fn planned(population: &Population, rounds: &[&[usize]]) -> Rounds {
    let plan = rounds
        .iter()
        .map(|r| {
            r.iter()
                .map(|&i| population.name(i).expect("in range"))
                .collect()
        })
        .collect();
    Rounds {
        rounds: rounds.len() as u32,
        plan,
        ..Rounds::default()
    }
}

fn sampled(rounds: u32, sample: usize, seed: u64) -> Rounds {
    Rounds {
        rounds,
        sample,
        seed,
        ..Rounds::default()
    }
}

#[test]
fn an_evicted_state_is_rebuilt_by_the_factory_on_its_next_use() {
    let population = Population::new(4);
    // Three collaborators twice, with room for two states: after round one, `site-0` (the least
    // recently used) is gone; round two rebuilds it, which evicts `site-1`, and so on.
    let flow = planned(&population, &[&[0, 1, 2], &[0, 1, 2]]);
    let counters = Counters::default();
    let runtime =
        LocalRuntime::population(population.clone(), counters.factory()).private_state_cache(2);
    let done = flow.clone().run(&runtime).expect("the run succeeds");
    assert_eq!(
        counters.builds(),
        6,
        "each state is rebuilt once in round two"
    );
    assert!(
        done.seen[1].iter().all(|(_, visits)| *visits == 1),
        "a rebuilt state starts afresh: {:?}",
        done.seen[1]
    );
    assert_eq!(
        counters.live.load(Ordering::SeqCst),
        0,
        "all states dropped with the run"
    );

    // A cache as large as the collaborators reused keeps every state across the rounds.
    let counters = Counters::default();
    let runtime =
        LocalRuntime::population(population.clone(), counters.factory()).private_state_cache(3);
    let done = flow.clone().run(&runtime).expect("the run succeeds");
    assert_eq!(counters.builds(), 3);
    assert!(done.seen[1].iter().all(|(_, visits)| *visits == 2));

    // So does the default, unbounded one.
    let counters = Counters::default();
    let runtime = LocalRuntime::population(population, counters.factory());
    let done = flow.run(&runtime).expect("the run succeeds");
    assert_eq!(counters.builds(), 3);
    assert!(done.seen[1].iter().all(|(_, visits)| *visits == 2));
}

#[test]
fn a_list_runtime_with_a_cache_evicts_too() {
    let names = ["a", "b", "c"];
    let counters = Counters::default();
    let runtime = LocalRuntime::new(names, counters.factory()).private_state_cache(1);
    let flow = Rounds {
        rounds: 2,
        plan: vec![vec!["a".into(), "b".into()], vec!["a".into(), "b".into()]],
        ..Rounds::default()
    };
    flow.run(&runtime).expect("the run succeeds");
    assert_eq!(counters.builds(), 4);
}

#[test]
fn the_cache_bound_holds_between_fan_outs_sequentially_and_in_parallel() {
    for workers in [1, 4] {
        let counters = Counters::default();
        let most = Arc::new(AtomicUsize::new(0));
        let (live, seen_most) = (Arc::clone(&counters.live), Arc::clone(&most));
        let runtime = LocalRuntime::population(Population::new(1_000), counters.factory())
            .private_state_cache(20)
            .parallel(workers)
            .observer(move |event: &Event<'_>| {
                if let Event::Joined { .. } = event {
                    seen_most.fetch_max(live.load(Ordering::SeqCst), Ordering::SeqCst);
                }
            });
        let done = sampled(6, 50, 3).run(&runtime).expect("the run succeeds");
        assert_eq!(done.seen.len(), 6);
        assert_eq!(most.load(Ordering::SeqCst), 20, "{workers} workers");
        assert!(
            counters.builds() >= 6 * 50 - 20,
            "evicted states were rebuilt"
        );
        assert_eq!(counters.live.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn an_unsampled_collaborators_factory_is_never_called() {
    let counters = Counters::default();
    let runtime = LocalRuntime::population(Population::new(100_000), counters.factory());
    let done = sampled(3, 10, 11).run(&runtime).expect("the run succeeds");
    let sampled: BTreeSet<String> = done
        .seen
        .iter()
        .flatten()
        .map(|(name, _)| name.clone())
        .collect();
    let built = counters.built.lock().expect("not poisoned").clone();
    let built_set: BTreeSet<String> = built.iter().cloned().collect();
    assert_eq!(built_set, sampled, "states are built for the sampled only");
    assert_eq!(
        built.len(),
        sampled.len(),
        "each at most once without a cache bound"
    );
}

#[test]
fn a_population_samples_what_the_sampler_picks_from_all_its_names() {
    let population = Population::new(1_000);
    let runtime = LocalRuntime::population(population.clone(), Counters::default().factory());
    let done = sampled(3, 25, 5).run(&runtime).expect("the run succeeds");
    let sampler = ClientSampler::new(5)
        .fraction(0.0)
        .min_clients(25)
        .min_available(1);
    for (round, seen) in done.seen.iter().enumerate() {
        let expected = sampler
            .sample(round as u64, population.names())
            .expect("1,000 are enough");
        let got: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, expected, "round {round}");
    }
}

#[test]
fn a_million_collaborators_two_sampled_rounds_of_a_hundred() {
    for workers in [1, 2] {
        let counters = Counters::default();
        let runtime = LocalRuntime::population(Population::new(1_000_000), counters.factory())
            .private_state_cache(1_000)
            .parallel(workers);
        let began = Instant::now();
        let done = sampled(2, 100, 42).run(&runtime).expect("the run succeeds");
        let took = began.elapsed();
        assert_eq!(done.seen.len(), 2);
        assert!(done.seen.iter().all(|round| round.len() == 100));
        assert!(counters.builds() <= 200);
        // Measured in tens of milliseconds in debug; listing a million names and indexing them
        // would take seconds. Generous for a loaded machine.
        assert!(
            took < Duration::from_secs(3),
            "two rounds of 100 from 1,000,000 took {took:?} on {workers} workers"
        );
    }
}

#[test]
fn a_flow_that_fans_out_to_every_collaborator_runs_on_a_small_population() {
    #[derive(Clone, Default, Serialize, Deserialize)]
    struct All {
        count: usize,
    }
    #[flow(collaborator = ())]
    impl All {
        #[aggregator]
        fn start(&mut self, ctx: &Ctx) -> Next<Self> {
            next!(self.visit, foreach = ctx.collaborators())
        }
        #[collaborator]
        fn visit(&mut self) -> Next<Self> {
            next!(self.join)
        }
        #[aggregator]
        fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
            self.count = inputs.len();
            next!(self.end)
        }
        #[aggregator]
        fn end(&mut self) {}
    }
    let runtime = LocalRuntime::population(Population::with_prefix("phone-", 30), |_: &str| ());
    assert_eq!(All::default().run(&runtime).expect("runs").count, 30);
    assert_eq!(runtime.collaborators()[29], "phone-29");
}

#[test]
fn a_fan_out_to_a_name_outside_the_population_or_twice_to_one_is_refused() {
    let population = Population::new(100);
    let runtime = LocalRuntime::population(population.clone(), Counters::default().factory());
    let unknown = Rounds {
        rounds: 1,
        plan: vec![vec!["site-01".into(), "site-7".into()]],
        ..Rounds::default()
    };
    let err = unknown
        .run(&runtime)
        .expect_err("site-7 is not a name of the population");
    assert!(
        matches!(&err, Error::UnknownCollaborator { name, .. } if name == "site-7"),
        "{err}"
    );
    assert!(err.to_string().contains("100 in all"), "{err}");
    let twice = planned(&population, &[&[3, 1, 3]]);
    let err = twice.run(&runtime).expect_err("site-03 twice");
    assert!(
        matches!(&err, Error::DuplicateCollaborator { name, .. } if name == "site-03"),
        "{err}"
    );
}

#[test]
fn a_population_runtime_refuses_checkpointing_and_an_empty_population() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let runtime = LocalRuntime::population(Population::new(10), Counters::default().factory())
        .checkpoint_dir(dir.path());
    let err = sampled(1, 2, 0).run(&runtime).expect_err("no checkpoints");
    assert!(err.to_string().contains("does not checkpoint"), "{err}");

    let empty = LocalRuntime::population(Population::new(0), Counters::default().factory());
    let err = sampled(1, 2, 0).run(&empty).expect_err("no collaborators");
    assert!(matches!(err, Error::InvalidCollaborators(_)), "{err}");
}

#[test]
fn sequential_and_parallel_population_runs_agree() {
    let run = |workers| {
        let runtime =
            LocalRuntime::population(Population::new(5_000), Counters::default().factory())
                .private_state_cache(64)
                .parallel(workers);
        sampled(4, 200, 9).run(&runtime).expect("the run succeeds")
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn population_names_are_zero_padded_and_read_back() {
    let p = Population::new(1_000_000);
    assert_eq!(p.name(0).as_deref(), Some("site-000000"));
    assert_eq!(p.name(999_999).as_deref(), Some("site-999999"));
    assert_eq!(p.name(1_000_000), None);
    for i in (0..1_000_000).step_by(7_919) {
        let name = p.name(i).expect("in range");
        assert_eq!(name, format!("site-{i:06}"));
        assert_eq!(p.position(&name), Some(i));
    }
    for bad in [
        "site-1000000",
        "site-00001",
        "site-00001x",
        "Site-000001",
        "site-+00001",
        "",
    ] {
        assert_eq!(p.position(bad), None, "{bad:?}");
    }
    let one = Population::with_prefix("", 1);
    assert_eq!(one.name(0).as_deref(), Some("0"));
    assert_eq!(one.position("0"), Some(0));
}
