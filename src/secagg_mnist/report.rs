//! The results table (the seed's, plus time per round) and the SVG plot.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use plotters::prelude::*;

use super::RoundRow;

/// The seed's results table in tabulate's "outline" style, with time per round.
pub fn results_table(rows: &[RoundRow], times: &[Duration]) -> String {
    let headers = [
        "Rounds",
        "Agg Model Validation Score",
        "Local Train loss",
        "Local Model Validation score",
        "Round time s",
    ];
    let body: Vec<[String; 5]> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            [
                r.round.to_string(),
                format!("{:.4}", r.agg_accuracy),
                format!("{:.4}", r.train_loss),
                format!("{:.4}", r.local_accuracy),
                times
                    .get(i)
                    .map_or_else(|| "-".to_string(), |t| format!("{:.2}", t.as_secs_f64())),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            body.iter()
                .map(|r| r[c].len())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = |fill: char| {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&fill.to_string().repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = rule('-');
    out.push('|');
    for (h, w) in headers.iter().zip(&widths) {
        let _ = write!(out, " {h:>w$} |");
    }
    out.push('\n');
    out.push_str(&rule('='));
    for r in &body {
        out.push('|');
        for (v, w) in r.iter().zip(&widths) {
            let _ = write!(out, " {v:>w$} |");
        }
        out.push('\n');
    }
    out.push_str(&rule('-'));
    out
}

/// Draws accuracy (aggregated and local) and training loss per round to an SVG file.
///
/// # Errors
/// A path that does not end in `.svg`, or an I/O error.
pub fn plot(rows: &[RoundRow], path: &Path) -> anyhow::Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        bail!(
            "`--plot {}`: only SVG output is supported; give a file name ending in .svg",
            path.display()
        );
    }
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE).context("drawing the plot")?;
    let (left, right) = root.split_horizontally(480);
    let last = rows.last().map_or(1, |r| r.round.max(1));
    let rounds = 0..last;
    let mut acc = ChartBuilder::on(&left)
        .caption("Validation accuracy", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(rounds.clone(), 0f64..1f64)
        .context("drawing the plot")?;
    acc.configure_mesh()
        .x_desc("round")
        .draw()
        .context("drawing the plot")?;
    acc.draw_series(LineSeries::new(
        rows.iter().map(|r| (r.round, r.agg_accuracy)),
        &BLUE,
    ))
    .context("drawing the plot")?
    .label("aggregated model")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    acc.draw_series(LineSeries::new(
        rows.iter().map(|r| (r.round, r.local_accuracy)),
        &RED,
    ))
    .context("drawing the plot")?
    .label("local models")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    acc.configure_series_labels()
        .border_style(BLACK)
        .draw()
        .context("drawing the plot")?;
    let max_loss = rows.iter().map(|r| r.train_loss).fold(0.1, f64::max) * 1.1;
    let mut loss = ChartBuilder::on(&right)
        .caption("Training loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(rounds, 0f64..max_loss)
        .context("drawing the plot")?;
    loss.configure_mesh()
        .x_desc("round")
        .draw()
        .context("drawing the plot")?;
    loss.draw_series(LineSeries::new(
        rows.iter().map(|r| (r.round, r.train_loss)),
        &BLACK,
    ))
    .context("drawing the plot")?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_seed_headers_and_one_line_per_round() {
        let rows = vec![
            RoundRow {
                round: 0,
                agg_accuracy: 0.1,
                train_loss: 2.0,
                local_accuracy: 0.5,
                ..Default::default()
            },
            RoundRow {
                round: 1,
                agg_accuracy: 0.5,
                train_loss: 1.0,
                local_accuracy: 0.7,
                ..Default::default()
            },
        ];
        let t = results_table(&rows, &[Duration::from_millis(1500)]);
        assert!(t.contains("Agg Model Validation Score"));
        assert!(t.contains("| 0.5000 |") || t.contains("0.5000"));
        assert!(t.contains("1.50"));
        assert_eq!(t.lines().count(), 3 + rows.len() + 1);
    }
}
