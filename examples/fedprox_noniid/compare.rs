//! The comparison the example prints: one column per variant (FedAvg is `mu = 0`), one row per
//! round with the new global model's accuracy on the whole held-out test set, then summary
//! rows. Also read by `tests/fedprox_noniid.rs`.

use std::fmt::Write as _;

use flspec_examples::example_support::rounds_table;
use flspec_examples::fedavg_mnist::RoundRow;

/// One variant's run: its `mu` and the flow's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantRun {
    /// FedProx's `mu` (0: FedAvg).
    pub mu: f64,
    /// The flow's results, one row per round.
    pub rows: Vec<RoundRow>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

impl VariantRun {
    /// `FedAvg`, or `FedProx mu=0.01`.
    pub fn name(&self) -> String {
        variant_name(self.mu)
    }

    /// The best round (from 1) and its accuracy; the first of equals.
    pub fn best(&self) -> Option<(u32, f64)> {
        self.rows
            .iter()
            .fold(None, |best: Option<(u32, f64)>, row| match best {
                Some((_, acc)) if acc >= row.accuracy => best,
                _ => Some((row.round + 1, row.accuracy)),
            })
    }

    /// The mean over rounds and collaborators of `||w_local - w_global||_2` after training: how
    /// far local training moved the models (FedProx's term pulls it in).
    pub fn mean_drift(&self) -> f64 {
        let drifts: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| r.participants.iter().map(|p| p.report.distance))
            .collect();
        if drifts.is_empty() {
            0.0
        } else {
            drifts.iter().sum::<f64>() / drifts.len() as f64
        }
    }
}

/// The column name of a variant: `FedAvg` for `mu = 0`, else `FedProx mu=MU`.
pub fn variant_name(mu: f64) -> String {
    if mu == 0.0 {
        "FedAvg".to_string()
    } else {
        format!("FedProx mu={mu}")
    }
}

/// The Markdown table: rounds from 1, the accuracy of each variant's global model after the
/// round (4 decimals), then the best round, the last round's mean training loss (the data
/// loss, without FedProx's term), the mean drift of the local models, and the run time.
pub fn table(runs: &[VariantRun]) -> String {
    let columns: Vec<(String, Vec<f64>)> = runs
        .iter()
        .map(|run| (run.name(), run.rows.iter().map(|r| r.accuracy).collect()))
        .collect();
    let mut out = rounds_table(&columns);
    let mut summary = |label: &str, cell: &dyn Fn(&VariantRun) -> String| {
        let _ = write!(out, "| {label} |");
        for run in runs {
            let _ = write!(out, " {} |", cell(run));
        }
        out.push('\n');
    };
    summary("best (round)", &|r| match r.best() {
        Some((round, acc)) => format!("{acc:.4} ({round})"),
        None => "-".to_string(),
    });
    summary("last train loss", &|r| match r.rows.last() {
        Some(row) => format!("{:.4}", row.train_loss),
        None => "-".to_string(),
    });
    summary("mean drift ‖w−w_g‖", &|r| {
        format!("{:.3}", r.mean_drift())
    });
    summary("time (s)", &|r| format!("{:.1}", r.seconds));
    out
}
