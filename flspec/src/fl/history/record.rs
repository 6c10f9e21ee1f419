//! The records: [`History`], [`RoundRecord`], [`ParticipantRecord`], and which way is better
//! for a metric ([`Goal`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The round-level metric names that have typed fields in [`RoundRecord`]; any other name goes
/// to [`RoundRecord::extra`].
pub const ROUND_METRICS: [&str; 3] = ["seconds", "loss", "accuracy"];

/// The collaborator-level metric names that have typed fields in [`ParticipantRecord`]; any
/// other name goes to [`ParticipantRecord::extra`].
pub const PARTICIPANT_METRICS: [&str; 6] = [
    "loss",
    "accuracy",
    "samples",
    "seconds",
    "bytes_sent",
    "bytes_received",
];

/// A run's history: one [`RoundRecord`] per round, in round order.
///
/// Small and serde-friendly, so a flow's aggregator can keep it in its state and checkpoint it
/// with the rest (every field is always serialized, as postcard needs; the compact JSON of
/// [`HistoryWriter`](super::HistoryWriter) leaves unmeasured fields out, and every field has a
/// default when read).
///
/// ```
/// use flspec::fl::history::{History, ParticipantRecord};
///
/// let mut history = History::new();
/// history
///     .record(1)
///     .seconds(2.5)
///     .loss(0.9)
///     .accuracy(0.71)
///     .participant(ParticipantRecord::new("Portland").loss(1.1).samples(600))
///     .participant(ParticipantRecord::dropout("Seattle"));
/// history.record(2).loss(0.5).accuracy(0.84).metric("prox_term", 0.02);
///
/// assert_eq!(history.series("accuracy"), [(1, 0.71), (2, 0.84)]);
/// assert_eq!(history.best("loss"), Some((2, 0.5)));
/// assert_eq!(history.rounds()[0].dropouts().collect::<Vec<_>>(), ["Seattle"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    rounds: Vec<RoundRecord>,
}

/// One round: its number, how long it took, the aggregate metrics (for example the global
/// model's validation loss and accuracy), and one [`ParticipantRecord`] per collaborator.
///
/// Fields left `None` were not measured; they are left out of the JSON line and written as
/// empty CSV cells; non-finite values (a diverged loss) are left out of JSON lines too, as JSON
/// has no NaN or infinity. Build one in place with [`History::record`], or on its own with
/// [`RoundRecord::new`] and add it with [`History::push`].
///
/// ```
/// use flspec::fl::history::RoundRecord;
///
/// let mut round = RoundRecord::new(3);
/// round.accuracy(0.9).metric("server_lr", 0.01);
/// assert_eq!(round.value("accuracy"), Some(0.9));
/// assert_eq!(round.value("server_lr"), Some(0.01));
/// assert_eq!(round.value("loss"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The round number.
    pub round: u64,
    /// Wall-clock seconds the round took.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// The aggregate loss (for example the global model's validation loss).
    #[serde(default)]
    pub loss: Option<f64>,
    /// The aggregate accuracy, as a fraction in 0..=1 by convention.
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Further named round metrics (a FedProx flow's proximal term, a robust aggregator's
    /// number of rejected updates, ...). Sorted by name, so the output is stable.
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
    /// One record per collaborator of the round, dropouts included.
    #[serde(default)]
    pub participants: Vec<ParticipantRecord>,
}

/// One collaborator in one round: its name, training loss and accuracy, how many samples it
/// trained on, how long it took, the bytes it sent and received, and whether it dropped out.
///
/// ```
/// use flspec::fl::history::ParticipantRecord;
///
/// let site = ParticipantRecord::new("Portland")
///     .loss(0.31)
///     .accuracy(0.92)
///     .samples(6000)
///     .seconds(4.2)
///     .bytes(87_360, 87_424)
///     .metric("prox_term", 0.004);
/// assert_eq!(site.value("bytes_sent"), Some(87_360.0));
/// assert!(!site.dropped);
/// assert!(ParticipantRecord::dropout("Seattle").dropped);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    /// The collaborator's name.
    pub name: String,
    /// Whether it dropped out of the round (its update did not count).
    #[serde(default)]
    pub dropped: bool,
    /// Its local training loss.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Its local accuracy.
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// The samples it trained on (the weight of its update in a weighted mean).
    #[serde(default)]
    pub samples: Option<u64>,
    /// Wall-clock seconds of its step.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Bytes it sent (its update, masked or not).
    #[serde(default)]
    pub bytes_sent: Option<u64>,
    /// Bytes it received (the global model and protocol messages).
    #[serde(default)]
    pub bytes_received: Option<u64>,
    /// Further named metrics, sorted by name.
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
}

/// Which way is better for a metric: used by [`History::best`].
///
/// ```
/// use flspec::fl::history::Goal;
///
/// assert_eq!(Goal::for_metric("accuracy"), Goal::Max);
/// assert_eq!(Goal::for_metric("val_loss"), Goal::Min);
/// assert_eq!(Goal::for_metric("seconds"), Goal::Min);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Lower is better (loss, error, time, bytes).
    Min,
    /// Higher is better (accuracy and the like).
    Max,
}

impl Goal {
    /// The goal a metric's name suggests: [`Goal::Min`] if the name contains `loss`, `error`,
    /// `seconds`, `time` or `bytes`, otherwise [`Goal::Max`]. Use [`History::best_by`] to say
    /// it outright.
    ///
    /// ```
    /// # use flspec::fl::history::Goal;
    /// assert_eq!(Goal::for_metric("test_error"), Goal::Min);
    /// assert_eq!(Goal::for_metric("f1"), Goal::Max);
    /// ```
    pub fn for_metric(name: &str) -> Goal {
        let lower = name.to_ascii_lowercase();
        let smaller_is_better = ["loss", "error", "seconds", "time", "bytes"];
        if smaller_is_better.iter().any(|w| lower.contains(w)) {
            Goal::Min
        } else {
            Goal::Max
        }
    }

    /// Whether `a` is better than `b` under this goal.
    ///
    /// ```
    /// # use flspec::fl::history::Goal;
    /// assert!(Goal::Min.is_better(0.1, 0.2));
    /// assert!(Goal::Max.is_better(0.9, 0.8));
    /// ```
    pub fn is_better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Min => a < b,
            Goal::Max => a > b,
        }
    }
}

impl History {
    /// An empty history.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// assert!(History::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of round `round`, created empty if there is none yet, for filling in with
    /// [`RoundRecord`]'s setters. Rounds stay sorted by number whatever order they are recorded
    /// in, and recording a round again (a round re-run after a restart from a checkpoint)
    /// edits the same record.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let mut h = History::new();
    /// h.record(2).accuracy(0.8);
    /// h.record(1).accuracy(0.7);
    /// h.record(2).loss(0.4);
    /// assert_eq!(h.len(), 2);
    /// assert_eq!(h.rounds()[1].round, 2);
    /// assert_eq!((h.rounds()[1].loss, h.rounds()[1].accuracy), (Some(0.4), Some(0.8)));
    /// ```
    pub fn record(&mut self, round: u64) -> &mut RoundRecord {
        let at = match self.rounds.binary_search_by_key(&round, |r| r.round) {
            Ok(at) => at,
            Err(at) => {
                self.rounds.insert(at, RoundRecord::new(round));
                at
            }
        };
        &mut self.rounds[at]
    }

    /// Adds a whole round record, replacing any earlier record of the same round (as reading a
    /// JSON-lines file does for a round written twice).
    ///
    /// ```
    /// # use flspec::fl::history::{History, RoundRecord};
    /// let mut h = History::new();
    /// let mut r = RoundRecord::new(1);
    /// r.accuracy(0.5);
    /// h.push(r.clone());
    /// r.accuracy(0.6);
    /// h.push(r);
    /// assert_eq!(h.series("accuracy"), [(1, 0.6)]);
    /// ```
    pub fn push(&mut self, record: RoundRecord) -> &mut RoundRecord {
        let slot = self.record(record.round);
        *slot = record;
        slot
    }

    /// The rounds recorded, in round order.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let mut h = History::new();
    /// h.record(5);
    /// assert_eq!(h.rounds()[0].round, 5);
    /// ```
    pub fn rounds(&self) -> &[RoundRecord] {
        &self.rounds
    }

    /// The number of rounds recorded.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let mut h = History::new();
    /// h.record(1);
    /// assert_eq!(h.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.rounds.len()
    }

    /// Whether no round is recorded.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// assert!(History::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }

    /// The last round recorded (the highest round number).
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let mut h = History::new();
    /// h.record(1).accuracy(0.5);
    /// h.record(2).accuracy(0.6);
    /// assert_eq!(h.last().map(|r| r.round), Some(2));
    /// ```
    pub fn last(&self) -> Option<&RoundRecord> {
        self.rounds.last()
    }

    /// A round metric over the rounds that have it, as `(round, value)` pairs ready to plot:
    /// a typed field (`seconds`, `loss`, `accuracy`), `participants` or `dropouts` (counts), or
    /// a name in [`RoundRecord::extra`]. Rounds without the metric are skipped.
    ///
    /// ```
    /// # use flspec::fl::history::{History, ParticipantRecord};
    /// let mut h = History::new();
    /// h.record(1).accuracy(0.5).participant(ParticipantRecord::dropout("a"));
    /// h.record(2).metric("rejected", 1.0);
    /// assert_eq!(h.series("accuracy"), [(1, 0.5)]);
    /// assert_eq!(h.series("rejected"), [(2, 1.0)]);
    /// assert_eq!(h.series("dropouts"), [(1, 1.0), (2, 0.0)]);
    /// ```
    pub fn series(&self, metric: &str) -> Vec<(u64, f64)> {
        self.rounds
            .iter()
            .filter_map(|r| r.value(metric).map(|v| (r.round, v)))
            .collect()
    }

    /// One collaborator's metric over the rounds it took part in (see
    /// [`ParticipantRecord::value`] for the names).
    ///
    /// ```
    /// # use flspec::fl::history::{History, ParticipantRecord};
    /// let mut h = History::new();
    /// h.record(1).participant(ParticipantRecord::new("a").loss(0.9));
    /// h.record(2).participant(ParticipantRecord::new("a").loss(0.4));
    /// assert_eq!(h.participant_series("a", "loss"), [(1, 0.9), (2, 0.4)]);
    /// ```
    pub fn participant_series(&self, name: &str, metric: &str) -> Vec<(u64, f64)> {
        self.rounds
            .iter()
            .filter_map(|r| {
                let p = r.participants.iter().find(|p| p.name == name)?;
                p.value(metric).map(|v| (r.round, v))
            })
            .collect()
    }

    /// The best round for a metric and its value, the goal taken from the name
    /// ([`Goal::for_metric`]: lowest loss, highest accuracy). NaN values are skipped; on a tie
    /// the earliest round wins.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let mut h = History::new();
    /// h.record(1).loss(0.5).accuracy(0.80);
    /// h.record(2).loss(0.3).accuracy(0.80);
    /// assert_eq!(h.best("loss"), Some((2, 0.3)));
    /// assert_eq!(h.best("accuracy"), Some((1, 0.80)));
    /// assert_eq!(h.best("missing"), None);
    /// ```
    pub fn best(&self, metric: &str) -> Option<(u64, f64)> {
        self.best_by(metric, Goal::for_metric(metric))
    }

    /// The best round for a metric under an explicit goal.
    ///
    /// ```
    /// # use flspec::fl::history::{Goal, History};
    /// let mut h = History::new();
    /// h.record(1).metric("margin", 3.0);
    /// h.record(2).metric("margin", 1.0);
    /// assert_eq!(h.best_by("margin", Goal::Min), Some((2, 1.0)));
    /// ```
    pub fn best_by(&self, metric: &str, goal: Goal) -> Option<(u64, f64)> {
        self.series(metric)
            .into_iter()
            .filter(|(_, v)| !v.is_nan())
            .fold(None, |best, (round, v)| match best {
                Some((_, b)) if !goal.is_better(v, b) => best,
                _ => Some((round, v)),
            })
    }

    /// The names of every round metric present in some round, typed ones first (in
    /// [`ROUND_METRICS`] order), then the extra ones sorted: the CSV's and TensorBoard's
    /// columns.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let mut h = History::new();
    /// h.record(1).accuracy(0.5).metric("mu", 0.1);
    /// h.record(2).seconds(1.0);
    /// assert_eq!(h.round_metric_names(), ["seconds", "accuracy", "mu"]);
    /// ```
    pub fn round_metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ROUND_METRICS
            .iter()
            .filter(|&&m| self.rounds.iter().any(|r| r.typed(m).is_some()))
            .map(|m| m.to_string())
            .collect();
        names.extend(self.extra_round_names());
        names
    }

    /// The extra round metric names in any round, sorted.
    pub(crate) fn extra_round_names(&self) -> Vec<String> {
        let mut names: Vec<&String> = self.rounds.iter().flat_map(|r| r.extra.keys()).collect();
        names.sort();
        names.dedup();
        names.into_iter().cloned().collect()
    }

    /// The extra collaborator metric names in any record, sorted.
    pub(crate) fn extra_participant_names(&self) -> Vec<String> {
        let mut names: Vec<&String> = self
            .rounds
            .iter()
            .flat_map(|r| r.participants.iter().flat_map(|p| p.extra.keys()))
            .collect();
        names.sort();
        names.dedup();
        names.into_iter().cloned().collect()
    }
}

impl RoundRecord {
    /// An empty record of round `round`.
    ///
    /// ```
    /// # use flspec::fl::history::RoundRecord;
    /// assert_eq!(RoundRecord::new(4).round, 4);
    /// ```
    pub fn new(round: u64) -> Self {
        RoundRecord {
            round,
            ..Self::default()
        }
    }

    /// Sets the seconds the round took.
    ///
    /// ```
    /// # use flspec::fl::history::RoundRecord;
    /// assert_eq!(RoundRecord::new(1).seconds(1.5).seconds, Some(1.5));
    /// ```
    pub fn seconds(&mut self, seconds: f64) -> &mut Self {
        self.seconds = Some(seconds);
        self
    }

    /// Sets the aggregate loss.
    ///
    /// ```
    /// # use flspec::fl::history::RoundRecord;
    /// assert_eq!(RoundRecord::new(1).loss(0.2).loss, Some(0.2));
    /// ```
    pub fn loss(&mut self, loss: f64) -> &mut Self {
        self.loss = Some(loss);
        self
    }

    /// Sets the aggregate accuracy.
    ///
    /// ```
    /// # use flspec::fl::history::RoundRecord;
    /// assert_eq!(RoundRecord::new(1).accuracy(0.9).accuracy, Some(0.9));
    /// ```
    pub fn accuracy(&mut self, accuracy: f64) -> &mut Self {
        self.accuracy = Some(accuracy);
        self
    }

    /// Sets a named metric: a name in [`ROUND_METRICS`] sets that typed field, any other goes
    /// to [`RoundRecord::extra`].
    ///
    /// ```
    /// # use flspec::fl::history::RoundRecord;
    /// let mut r = RoundRecord::new(1);
    /// r.metric("loss", 0.3).metric("server_lr", 0.1);
    /// assert_eq!(r.loss, Some(0.3));
    /// assert_eq!(r.extra["server_lr"], 0.1);
    /// ```
    pub fn metric(&mut self, name: &str, value: f64) -> &mut Self {
        match name {
            "seconds" => self.seconds = Some(value),
            "loss" => self.loss = Some(value),
            "accuracy" => self.accuracy = Some(value),
            _ => {
                self.extra.insert(name.to_string(), value);
            }
        }
        self
    }

    /// Adds a collaborator's record, replacing an earlier one of the same name.
    ///
    /// ```
    /// # use flspec::fl::history::{ParticipantRecord, RoundRecord};
    /// let mut r = RoundRecord::new(1);
    /// r.participant(ParticipantRecord::new("a").loss(1.0));
    /// r.participant(ParticipantRecord::new("a").loss(0.5));
    /// assert_eq!(r.participants.len(), 1);
    /// assert_eq!(r.participants[0].loss, Some(0.5));
    /// ```
    pub fn participant(&mut self, record: ParticipantRecord) -> &mut Self {
        match self.participants.iter_mut().find(|p| p.name == record.name) {
            Some(slot) => *slot = record,
            None => self.participants.push(record),
        }
        self
    }

    /// The names of the collaborators that dropped out of this round.
    ///
    /// ```
    /// # use flspec::fl::history::{ParticipantRecord, RoundRecord};
    /// let mut r = RoundRecord::new(1);
    /// r.participant(ParticipantRecord::new("a")).participant(ParticipantRecord::dropout("b"));
    /// assert_eq!(r.dropouts().collect::<Vec<_>>(), ["b"]);
    /// ```
    pub fn dropouts(&self) -> impl Iterator<Item = &str> {
        self.participants
            .iter()
            .filter(|p| p.dropped)
            .map(|p| p.name.as_str())
    }

    /// A metric of this round by name: a typed field, `participants` or `dropouts` (counts),
    /// or an extra metric.
    ///
    /// ```
    /// # use flspec::fl::history::{ParticipantRecord, RoundRecord};
    /// let mut r = RoundRecord::new(1);
    /// r.loss(0.5).participant(ParticipantRecord::new("a"));
    /// assert_eq!(r.value("loss"), Some(0.5));
    /// assert_eq!(r.value("participants"), Some(1.0));
    /// assert_eq!(r.value("nope"), None);
    /// ```
    pub fn value(&self, name: &str) -> Option<f64> {
        match name {
            "participants" => Some(self.participants.len() as f64),
            "dropouts" => Some(self.dropouts().count() as f64),
            _ => self.typed(name).or_else(|| self.extra.get(name).copied()),
        }
    }

    fn typed(&self, name: &str) -> Option<f64> {
        match name {
            "seconds" => self.seconds,
            "loss" => self.loss,
            "accuracy" => self.accuracy,
            _ => None,
        }
    }
}

impl ParticipantRecord {
    /// A record for the collaborator `name`, with nothing measured yet.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// assert_eq!(ParticipantRecord::new("a").name, "a");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        ParticipantRecord {
            name: name.into(),
            ..Self::default()
        }
    }

    /// A record for a collaborator that dropped out of the round.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// assert!(ParticipantRecord::dropout("a").dropped);
    /// ```
    pub fn dropout(name: impl Into<String>) -> Self {
        ParticipantRecord {
            dropped: true,
            ..Self::new(name)
        }
    }

    /// Sets its training loss.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// assert_eq!(ParticipantRecord::new("a").loss(0.2).loss, Some(0.2));
    /// ```
    pub fn loss(mut self, loss: f64) -> Self {
        self.loss = Some(loss);
        self
    }

    /// Sets its accuracy.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// assert_eq!(ParticipantRecord::new("a").accuracy(0.9).accuracy, Some(0.9));
    /// ```
    pub fn accuracy(mut self, accuracy: f64) -> Self {
        self.accuracy = Some(accuracy);
        self
    }

    /// Sets the samples it trained on.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// assert_eq!(ParticipantRecord::new("a").samples(600).samples, Some(600));
    /// ```
    pub fn samples(mut self, samples: u64) -> Self {
        self.samples = Some(samples);
        self
    }

    /// Sets the seconds its step took.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// assert_eq!(ParticipantRecord::new("a").seconds(2.0).seconds, Some(2.0));
    /// ```
    pub fn seconds(mut self, seconds: f64) -> Self {
        self.seconds = Some(seconds);
        self
    }

    /// Sets the bytes it sent and received.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// let p = ParticipantRecord::new("a").bytes(10, 20);
    /// assert_eq!((p.bytes_sent, p.bytes_received), (Some(10), Some(20)));
    /// ```
    pub fn bytes(mut self, sent: u64, received: u64) -> Self {
        self.bytes_sent = Some(sent);
        self.bytes_received = Some(received);
        self
    }

    /// Sets a named metric: `loss`, `accuracy` and `seconds` set their typed fields, any other
    /// name goes to [`ParticipantRecord::extra`] (the integer fields have their own setters).
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// let p = ParticipantRecord::new("a").metric("accuracy", 0.7).metric("grad_norm", 3.5);
    /// assert_eq!(p.accuracy, Some(0.7));
    /// assert_eq!(p.extra["grad_norm"], 3.5);
    /// ```
    pub fn metric(mut self, name: &str, value: f64) -> Self {
        match name {
            "loss" => self.loss = Some(value),
            "accuracy" => self.accuracy = Some(value),
            "seconds" => self.seconds = Some(value),
            _ => {
                self.extra.insert(name.to_string(), value);
            }
        }
        self
    }

    /// A metric by name: a name in [`PARTICIPANT_METRICS`] (the integers as `f64`), `dropped`
    /// (1 or 0), or an extra metric.
    ///
    /// ```
    /// # use flspec::fl::history::ParticipantRecord;
    /// let p = ParticipantRecord::new("a").samples(600);
    /// assert_eq!(p.value("samples"), Some(600.0));
    /// assert_eq!(p.value("dropped"), Some(0.0));
    /// assert_eq!(p.value("loss"), None);
    /// ```
    pub fn value(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => self.loss,
            "accuracy" => self.accuracy,
            "samples" => self.samples.map(|v| v as f64),
            "seconds" => self.seconds,
            "bytes_sent" => self.bytes_sent.map(|v| v as f64),
            "bytes_received" => self.bytes_received.map(|v| v as f64),
            "dropped" => Some(if self.dropped { 1.0 } else { 0.0 }),
            _ => self.extra.get(name).copied(),
        }
    }
}
