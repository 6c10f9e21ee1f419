//! The example's defaults (attackers, rules) and its tables, as Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use flspec_examples::example_support::{file_with_suffix, rounds_table};
use flspec_examples::fedavg_mnist::{Attack, Attacker, RoundRow, Rule};

/// One run: a rule, with or without the attackers.
pub struct Run {
    /// The aggregation rule.
    pub rule: Rule,
    /// Whether the attackers took part.
    pub attacked: bool,
    /// The results per round.
    pub rows: Vec<RoundRow>,
    /// Wall time of the run.
    pub seconds: f64,
}

impl Run {
    /// The global model's accuracy after the last round (0 for no round).
    pub fn final_accuracy(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.accuracy)
    }
}

/// `median, attack` / `median, no attack`.
pub fn run_name(rule: &Rule, attacked: bool) -> String {
    format!("{rule}, {}", if attacked { "attack" } else { "no attack" })
}

/// A folder name: `median-attack`, `multi-krum-2-8-clean`.
pub fn slug(rule: &Rule, attacked: bool) -> String {
    let rule: String = rule
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{rule}-{}", if attacked { "attack" } else { "clean" })
}

/// `FILE` with the run's slug added before the extension: `model.safetensors` →
/// `model-median-attack.safetensors`.
pub fn run_file(file: &Path, rule: &Rule, attacked: bool) -> PathBuf {
    file_with_suffix(file, &slug(rule, attacked))
}

/// The last two collaborators, each with a sign flip of the default scale (the last one alone
/// if there are fewer than 3 collaborators).
pub fn default_attackers(names: &[String]) -> Vec<Attacker> {
    let count = if names.len() >= 3 { 2 } else { 1 };
    names[names.len().saturating_sub(count)..]
        .iter()
        .map(|name| Attacker {
            name: name.clone(),
            attack: Attack::SignFlip {
                scale: Attack::DEFAULT_SCALE,
            },
        })
        .collect()
}

/// Every rule, tuned to `f` attackers among `n` collaborators: mean, median, trimmed mean
/// cutting at least `f` from each end (β = max(0.2, f/n)), Krum and Multi-Krum with `F = f`
/// (Multi-Krum averaging `n − f`), and Bulyan with `F = f`. A rule whose guarantee needs more
/// collaborators than `n` is left out, with the reason.
pub fn default_rules(n: usize, f: usize) -> (Vec<Rule>, Vec<(String, String)>) {
    let beta = (f as f64 / n.max(1) as f64).max(0.2);
    let candidates = [
        Rule::Mean,
        Rule::Median,
        Rule::TrimmedMean { beta },
        Rule::Krum { f },
        Rule::MultiKrum {
            f,
            m: n.saturating_sub(f).max(1),
        },
        Rule::Bulyan { f },
    ];
    let mut rules = Vec::new();
    let mut skipped = Vec::new();
    for rule in candidates {
        if let Rule::TrimmedMean { beta } = rule
            && beta >= 0.5
        {
            skipped.push((
                rule.to_string(),
                format!("{f} attackers of {n} are too many to trim"),
            ));
        } else if n < rule.min_updates() {
            skipped.push((
                rule.to_string(),
                format!(
                    "it needs at least {} collaborators for F = {f}, the run has {n}",
                    rule.min_updates()
                ),
            ));
        } else {
            rules.push(rule);
        }
    }
    (rules, skipped)
}

/// One row per rule: the final accuracy without and with the attackers, and the change.
pub fn final_table(runs: &[Run]) -> String {
    let mut rules: Vec<Rule> = Vec::new();
    for r in runs {
        if !rules.contains(&r.rule) {
            rules.push(r.rule);
        }
    }
    let find = |rule: &Rule, attacked: bool| {
        runs.iter()
            .find(|r| r.rule == *rule && r.attacked == attacked)
            .map(Run::final_accuracy)
    };
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    let mut out =
        String::from("| rule | no attack | under attack | change |\n|---|---:|---:|---:|\n");
    for rule in &rules {
        let (clean, attacked) = (find(rule, false), find(rule, true));
        let change = match (clean, attacked) {
            (Some(c), Some(a)) => format!("{:+.4}", a - c),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "| {rule} | {} | {} | {change} |",
            cell(clean),
            cell(attacked)
        );
    }
    out
}

/// One row per round, one column per run: the global model's accuracy after the round.
pub fn per_round_table(runs: &[Run]) -> String {
    let columns: Vec<(String, Vec<f64>)> = runs
        .iter()
        .map(|r| {
            let accuracy = r.rows.iter().map(|row| row.accuracy).collect();
            (run_name(&r.rule, r.attacked), accuracy)
        })
        .collect();
    rounds_table(&columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: Rule, attacked: bool, accuracies: &[f64]) -> Run {
        Run {
            rule,
            attacked,
            rows: accuracies
                .iter()
                .enumerate()
                .map(|(i, &accuracy)| RoundRow {
                    round: i as u32,
                    accuracy,
                    ..RoundRow::default()
                })
                .collect(),
            seconds: 1.0,
        }
    }

    #[test]
    fn the_default_is_two_sign_flippers_among_ten_and_every_rule_that_fits() {
        let names = flspec_examples::fedavg_mnist::collaborator_names(10);
        let attackers = default_attackers(&names);
        let shown: Vec<String> = attackers.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "collaborator-009:sign-flip:4",
                "collaborator-010:sign-flip:4"
            ]
        );
        let (rules, skipped) = default_rules(10, 2);
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "mean",
                "median",
                "trimmed-mean:0.2",
                "krum:2",
                "multi-krum:2,8"
            ]
        );
        // Bulyan with F = 2 needs 4F + 3 = 11 collaborators.
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].1.contains("at least 11"), "{skipped:?}");
        let (rules, _) = default_rules(20, 3);
        assert!(rules.contains(&Rule::Bulyan { f: 3 }));
        assert!(rules.contains(&Rule::TrimmedMean { beta: 0.2 }));
        let (rules, _) = default_rules(10, 3);
        assert!(rules.contains(&Rule::TrimmedMean { beta: 0.3 }));
    }

    #[test]
    fn tables_show_each_rule_with_and_without_the_attack() {
        let runs = [
            run(Rule::Mean, false, &[0.5, 0.9]),
            run(Rule::Mean, true, &[0.1, 0.098]),
            run(Rule::Median, true, &[0.5, 0.88]),
        ];
        assert_eq!(
            final_table(&runs),
            "| rule | no attack | under attack | change |\n\
             |---|---:|---:|---:|\n\
             | mean | 0.9000 | 0.0980 | -0.8020 |\n\
             | median | - | 0.8800 | - |\n"
        );
        assert_eq!(
            per_round_table(&runs),
            "| round | mean, no attack | mean, attack | median, attack |\n\
             |---:|---:|---:|---:|\n\
             | 1 | 0.5000 | 0.1000 | 0.5000 |\n\
             | 2 | 0.9000 | 0.0980 | 0.8800 |\n"
        );
        assert_eq!(
            slug(&Rule::MultiKrum { f: 2, m: 8 }, false),
            "multi-krum-2-8-clean"
        );
        assert_eq!(
            slug(&Rule::TrimmedMean { beta: 0.2 }, true),
            "trimmed-mean-0.2-attack"
        );
        assert_eq!(
            run_file(Path::new("out/model.safetensors"), &Rule::Median, true),
            Path::new("out/model-median-attack.safetensors")
        );
        assert_eq!(
            run_file(Path::new("model"), &Rule::Mean, false),
            Path::new("model-mean-clean")
        );
    }
}
