//! The results table (the seed's, plus time per round), the SVG plot of a run, and the chart of
//! each collaborator's training labels (`--histogram`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use flspec::fl::partition::LabelHistogram;
use plotters::prelude::*;

use super::RoundRow;
use crate::example_support::column_widths;

/// One colour per digit (matplotlib's `tab10`).
const CLASS_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The seed's results table in tabulate's "outline" style, with time per round.
pub fn results_table(rows: &[RoundRow], times: &[Duration]) -> String {
    let private = rows.iter().any(|r| r.epsilon.is_some());
    let mut headers = vec![
        "Rounds",
        "Agg Model Validation Score",
        "Local Train loss",
        "Local Model Validation score",
        "Round time s",
    ];
    if private {
        headers.push("Epsilon spent");
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = vec![
                r.round.to_string(),
                format!("{:.4}", r.agg_accuracy),
                format!("{:.4}", r.train_loss),
                format!("{:.4}", r.local_accuracy),
                times
                    .get(i)
                    .map_or_else(|| "-".to_string(), |t| format!("{:.2}", t.as_secs_f64())),
            ];
            if private {
                row.push(
                    r.epsilon
                        .map_or_else(|| "-".to_string(), |e| format!("{e:.3}")),
                );
            }
            row
        })
        .collect();
    let widths = column_widths(&headers, &body);
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
    register_font();
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

/// With the `plot` feature, plotters draws text with fonts registered at run time: register
/// the system's before drawing (SVG text needs one for its layout too).
fn register_font() {
    #[cfg(feature = "plot")]
    let _ = flspec::fl::history::plot::system_font();
}

/// Draws each collaborator's training samples per digit as stacked bars, one bar per
/// collaborator, to `path`: `.svg` here, with the collaborators' names under their bars; `.png`
/// with the `plot` feature, by `flspec::fl::history::plot::LabelHistogramChart` (bars numbered
/// from 0 in the order of `names`, which the title lists).
///
/// Returns a warning when the PNG had to be drawn without text (no font found).
///
/// # Errors
/// Another extension (or `.png` without the `plot` feature), fewer names than sites, or an I/O
/// error.
///
/// ```
/// use flspec::fl::partition::Partitioner;
/// use flspec_examples::secagg_mnist::report::histogram_chart;
///
/// let labels: Vec<u8> = (0..300).map(|i| (i % 10) as u8).collect();
/// let hist = "dirichlet:0.3".parse::<Partitioner>()?.partition(&labels, 10, 3, 7)?.histogram(&labels, 10)?;
/// let names = ["Bengaluru", "Portland", "collaborator-003"].map(String::from);
/// let dir = tempfile::tempdir()?;
/// histogram_chart(&hist, &names, &dir.path().join("labels.svg"))?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn histogram_chart(
    hist: &LabelHistogram,
    names: &[String],
    path: &Path,
) -> anyhow::Result<Option<String>> {
    let sites = hist.sites();
    if names.len() < sites {
        bail!("{} names for {sites} collaborators", names.len());
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {}
        Some("png") => return histogram_png(hist, names, path),
        _ => bail!(
            "`--histogram {}`: give a file name ending in .svg or .png",
            path.display()
        ),
    }
    register_font();
    let classes = (0..sites).map(|s| hist.counts(s).len()).max().unwrap_or(0);
    let tallest = (0..sites)
        .map(|s| hist.counts(s).iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    // Room for each name under its bar, and a legend column of its own on the right, so that
    // it never hides a bar.
    let width = (140 + 100 * sites as u32).clamp(480, 4000);
    let root = SVGBackend::new(path, (width + 110, 420)).into_drawing_area();
    root.fill(&WHITE).context("drawing the histogram")?;
    let (plot_area, legend) = root.split_horizontally(width);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(
            "Training samples per collaborator and digit",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..sites as f64 - 0.5, 0f64..tallest as f64 * 1.05)
        .context("drawing the histogram")?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(sites.min(40))
        .x_label_formatter(&label)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("training samples")
        .draw()
        .context("drawing the histogram")?;
    for class in 0..classes {
        let colour = CLASS_COLOURS[class % CLASS_COLOURS.len()];
        let bars = (0..sites).filter_map(|s| {
            let counts = hist.counts(s);
            let below: usize = counts.iter().take(class).sum();
            let n = counts.get(class).copied().unwrap_or(0);
            (n > 0).then(|| {
                let x = s as f64;
                Rectangle::new(
                    [(x - 0.4, below as f64), (x + 0.4, (below + n) as f64)],
                    colour.filled(),
                )
            })
        });
        chart.draw_series(bars).context("drawing the histogram")?;
    }
    for class in 0..classes {
        let colour = CLASS_COLOURS[class % CLASS_COLOURS.len()];
        let y = 50 + 22 * class as i32;
        legend
            .draw(&Rectangle::new([(8, y), (22, y + 14)], colour.filled()))
            .context("drawing the histogram")?;
        legend
            .draw(&Text::new(
                format!("digit {class}"),
                (30, y),
                ("sans-serif", 14),
            ))
            .context("drawing the histogram")?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(None)
}

/// [`histogram_chart`] to a PNG file, by `flspec::fl::history::plot`.
#[cfg(feature = "plot")]
fn histogram_png(
    hist: &LabelHistogram,
    names: &[String],
    path: &Path,
) -> anyhow::Result<Option<String>> {
    use flspec::fl::history::plot::LabelHistogramChart;
    let width = (140 + 60 * hist.sites() as u32).clamp(800, 4000);
    // As many "i = name" as fit the title's width (about 13 pixels a character).
    let room = width as usize / 13;
    let mut title = "Training labels per site (".to_string();
    for (i, name) in names.iter().take(hist.sites()).enumerate() {
        let item = format!("{}{i} = {name}", if i == 0 { "" } else { ", " });
        if title.len() + item.len() + 5 > room {
            title.push_str(if i == 0 { "..." } else { ", ..." });
            break;
        }
        title.push_str(&item);
    }
    title.push(')');
    let drawn = LabelHistogramChart::new(title, hist)
        .size(width, 500)
        .draw(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(drawn.warning)
}

/// Without the `plot` feature there is no PNG encoder: say how to get one.
#[cfg(not(feature = "plot"))]
fn histogram_png(
    _hist: &LabelHistogram,
    _names: &[String],
    path: &Path,
) -> anyhow::Result<Option<String>> {
    bail!(
        "`--histogram {}`: PNG charts need the `plot` feature (`cargo run --release --features plot --example secagg_mnist -- ...`); or give a file name ending in .svg",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_chart_has_a_bar_per_collaborator_and_class() {
        let labels: Vec<u8> = (0..60).map(|i| (i % 3) as u8).collect();
        let hist = flspec::fl::partition::Partitioner::Strided
            .partition(&labels, 3, 2, 0)
            .and_then(|p| p.histogram(&labels, 3))
            .expect("histogram");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hist.svg");
        let names = ["Bengaluru".to_string(), "Portland".to_string()];
        histogram_chart(&hist, &names, &path).expect("chart");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(
            svg.contains("Bengaluru") && svg.contains("Portland"),
            "{svg}"
        );
        assert!(svg.contains("digit 2"), "{svg}");
        // 2 sites x 3 classes, every count non-zero: 6 bars (plus background and legend).
        assert!(svg.matches("<rect").count() >= 6 + 3, "{svg}");
        let err = histogram_chart(&hist, &names, &dir.path().join("hist.pdf"))
            .expect_err("not svg")
            .to_string();
        assert!(err.contains("--histogram"), "{err}");
        let png = dir.path().join("hist.png");
        let drawn = histogram_chart(&hist, &names, &png);
        if cfg!(feature = "plot") {
            drawn.expect("a PNG with the plot feature");
            let bytes = std::fs::read(&png).expect("png");
            assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        } else {
            let err = drawn.expect_err("no PNG encoder").to_string();
            assert!(err.contains("--features plot"), "{err}");
        }
    }

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
