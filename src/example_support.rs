//! What the MNIST examples share: loading MNIST from `--data`/`--download` or the bundled
//! subset, libtorch's thread count, progress bars, Markdown tables of per-round values, writing
//! a run [`History`] to a folder, file names per variant, and line charts of accuracy.
//!
//! Each example keeps its own command line and flow; the pieces here are the same in all of
//! them, so that a fix lands once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flspec::fl::history::{History, HistoryWriter};
use flspec::fl::schedule::EpochSchedule;
use flspec::{Event, Role};
use flspec_tch::datasets::mnist::{self, Mnist};
use flspec_tch::device::DeviceChoice;

use crate::fedavg_mnist::RunOptions;
use flspec_tch::threads;
use indicatif::{ProgressBar, ProgressStyle};

/// The local-training options that the FedAvg MNIST examples (`byzantine`, `fedprox_noniid`)
/// share, for `#[command(flatten)]` in a clap parser (each example keeps its own `--lr`
/// default and `--seed`).
///
/// ```
/// use clap::Parser;
/// use flspec_examples::example_support::TrainingArgs;
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     training: TrainingArgs,
/// }
/// let args = Args::parse_from(["example", "--parallel", "--batch-size", "64"]);
/// assert_eq!(args.training.workers(), 2);
/// assert_eq!((args.training.batch_size, args.training.momentum), (64, 0.5));
/// assert_eq!(Args::parse_from(["example"]).training.workers(), 1);
/// let on_cpu = Args::parse_from(["example", "--device", "cpu"]);
/// assert_eq!(on_cpu.training.device.to_string(), "cpu");
/// ```
#[derive(clap::Args, Clone, Debug)]
pub struct TrainingArgs {
    /// Local epochs per round: a number (1) or a schedule (piecewise:0=2,10=1; ...).
    #[arg(long, value_name = "SCHEDULE", default_value = "1")]
    pub epochs: EpochSchedule,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.5)]
    pub momentum: f64,
    /// Samples per training batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Train the collaborators in parallel, with this many workers.
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    pub parallel: Option<usize>,
    /// libtorch threads per operation. Default: the cores this process may use divided by the
    /// collaborators trained at once, at least 1. Use --threads 1 for reproducible numbers: the
    /// results then depend only on the seeds.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to train and validate: auto (the first CUDA device if libtorch sees one, else the
    /// CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

impl TrainingArgs {
    /// The collaborators trained at once: `--parallel`'s workers, else 1.
    pub fn workers(&self) -> usize {
        self.parallel.unwrap_or(1).max(1)
    }

    /// Sets libtorch's threads ([`set_threads`]) for [`Self::workers`].
    pub fn set_threads(&self) {
        set_threads(self.threads, self.workers());
    }

    /// Writes the epochs, momentum, batch size, workers and device into `options`.
    ///
    /// # Errors
    /// When `--device` names a device this libtorch cannot use (e.g. `cuda` on a CPU-only
    /// libtorch), saying why.
    pub fn apply(&self, options: &mut RunOptions) -> anyhow::Result<()> {
        options.workers = self.workers();
        options.settings.epochs = self.epochs.clone();
        options.settings.momentum = self.momentum;
        options.settings.batch_size = self.batch_size;
        options.device = self
            .device
            .resolve()
            .with_context(|| format!("`--device {}`", self.device))?;
        Ok(())
    }
}

/// Where `--download` puts MNIST when `--data` is not given.
pub const DEFAULT_DOWNLOAD_DIR: &str = ".cache/mnist";

/// The examples' MNIST options, for `#[command(flatten)]` in a clap parser: a full MNIST
/// folder, or the bundled subset, optionally downloaded first.
///
/// ```
/// use clap::Parser;
/// use flspec_examples::example_support::MnistArgs;
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     mnist: MnistArgs,
/// }
/// let args = Args::parse_from(["example", "--data", "mnist/raw", "--download"]);
/// assert_eq!(args.mnist.data.as_deref(), Some(std::path::Path::new("mnist/raw")));
/// assert!(args.mnist.download);
/// ```
#[derive(clap::Args, Clone, Debug, Default)]
pub struct MnistArgs {
    /// A full MNIST folder (torchvision's MNIST/raw layout, .gz or not) instead of the bundled
    /// subset (4,000 training and 1,000 test images).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Download MNIST into the --data folder (or .cache/mnist), verifying SHA-256, first.
    #[arg(long)]
    pub download: bool,
}

impl MnistArgs {
    /// Loads the data these options name: see [`load_mnist`].
    ///
    /// # Errors
    /// As [`load_mnist`].
    ///
    /// ```no_run
    /// # use flspec_examples::example_support::MnistArgs;
    /// let data = MnistArgs::default().load()?; // the bundled subset
    /// assert_eq!(data.test.len(), 1000);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn load(&self) -> anyhow::Result<Mnist> {
        load_mnist(self.data.as_deref(), self.download)
    }
}

/// MNIST from the folder `data` (torchvision's MNIST/raw layout), or the bundled subset when
/// `data` is `None`. With `download`, first downloads MNIST (verifying SHA-256) into `data`, or
/// into [`DEFAULT_DOWNLOAD_DIR`] when `data` is `None`, and reads it from there.
///
/// # Errors
/// The download failed, or the folder holds no readable MNIST; the error names the folder.
///
/// ```no_run
/// # use flspec_examples::example_support::load_mnist;
/// let bundled = load_mnist(None, false)?;
/// let full = load_mnist(Some(std::path::Path::new("data/MNIST/raw")), true)?;
/// assert!(full.train.len() > bundled.train.len());
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn load_mnist(data: Option<&Path>, download: bool) -> anyhow::Result<Mnist> {
    if download {
        let dir = data.map_or_else(|| PathBuf::from(DEFAULT_DOWNLOAD_DIR), Path::to_path_buf);
        mnist::download::download(&dir).context("downloading MNIST")?;
        return Mnist::load(&dir).with_context(|| format!("reading MNIST from {}", dir.display()));
    }
    match data {
        Some(dir) => {
            Mnist::load(dir).with_context(|| format!("reading MNIST from {}", dir.display()))
        }
        None => Mnist::load_bundled().context("reading the bundled MNIST subset"),
    }
}

/// Sets libtorch's threads per operation: `threads` if given, else the cores this process may
/// use shared among `workers` collaborators training at once
/// ([`threads::default_num_threads`]); returns the number set.
///
/// ```no_run
/// # use flspec_examples::example_support::set_threads;
/// assert_eq!(set_threads(Some(1), 2), 1);
/// ```
pub fn set_threads(threads: Option<usize>, workers: usize) -> usize {
    let n = threads
        .unwrap_or_else(|| threads::default_num_threads(threads::available_cores(), workers));
    threads::set_num_threads(n);
    n
}

const BAR_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} collaborator-rounds {msg}";
const PREFIXED_BAR_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {prefix} {bar:30} {pos}/{len} collaborator-rounds {msg}";

/// A progress bar over `collaborator_rounds` units (runs × rounds × collaborators), hidden when
/// `quiet`.
///
/// ```
/// # use flspec_examples::example_support::progress_bar;
/// let bar = progress_bar(3 * 10 * 4, true);
/// assert!(bar.is_hidden());
/// ```
pub fn progress_bar(collaborator_rounds: u64, quiet: bool) -> ProgressBar {
    styled_bar(collaborator_rounds, quiet, BAR_TEMPLATE)
}

/// As [`progress_bar`], with the bar's prefix (`ProgressBar::set_prefix`: the variant running)
/// shown before the bar.
///
/// ```
/// # use flspec_examples::example_support::prefixed_progress_bar;
/// let bar = prefixed_progress_bar(40, false);
/// bar.set_prefix("fedadam");
/// assert_eq!(bar.length(), Some(40));
/// # bar.finish_and_clear();
/// ```
pub fn prefixed_progress_bar(collaborator_rounds: u64, quiet: bool) -> ProgressBar {
    styled_bar(collaborator_rounds, quiet, PREFIXED_BAR_TEMPLATE)
}

fn styled_bar(units: u64, quiet: bool, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(units)
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Prints a line above the progress bar (or plainly when the bar is hidden, with `--quiet`).
///
/// ```
/// # use flspec_examples::example_support::{progress_bar, say};
/// say(&progress_bar(1, true), "model: model-fedavg.safetensors".to_string());
/// ```
pub fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

/// An observer for `LocalRuntime::observer` that moves `bar` on for each collaborator that
/// finished the step `train` (the `fedavg_mnist` flow's training step), with
/// `RUN: COLLABORATOR` as its message while one trains.
///
/// ```
/// # use flspec_examples::example_support::{progress_bar, train_progress};
/// use flspec::{Event, Role};
/// let bar = progress_bar(2, true);
/// let observe = train_progress(&bar, "FedAvg".to_string());
/// observe(&Event::StepFinished {
///     step: "train",
///     role: Role::Collaborator, participant: "Portland",
///     elapsed: std::time::Duration::ZERO,
/// });
/// assert_eq!(bar.position(), 1);
/// ```
pub fn train_progress(
    bar: &ProgressBar,
    run: String,
) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
    let bar = bar.clone();
    move |event: &Event<'_>| match *event {
        Event::StepStarted {
            step: "train",
            participant,
            ..
        } => bar.set_message(format!("{run}: {participant}")),
        Event::StepFinished {
            step: "train",
            role: Role::Collaborator,
            ..
        } => bar.inc(1),
        _ => {}
    }
}

/// `file` with `-SUFFIX` added to its stem: `model.safetensors` + `fedavg` ->
/// `model-fedavg.safetensors` (one file per run or variant).
///
/// ```
/// # use std::path::Path;
/// # use flspec_examples::example_support::file_with_suffix;
/// assert_eq!(
///     file_with_suffix(Path::new("out/model.safetensors"), "median-attack"),
///     Path::new("out/model-median-attack.safetensors")
/// );
/// assert_eq!(file_with_suffix(Path::new("model"), "fedavg"), Path::new("model-fedavg"));
/// ```
pub fn file_with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let name = match file.extension() {
        Some(ext) => format!("{stem}-{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{suffix}"),
    };
    file.with_file_name(name)
}

/// Writes `history` to the folder `dir` (created if missing): `history.jsonl`, and
/// `history_rounds.csv` and `history_participants.csv`.
///
/// # Errors
/// The folder or a file could not be written; the error names it.
///
/// ```
/// # use flspec::fl::history::History;
/// # use flspec_examples::example_support::write_history;
/// let dir = tempfile::tempdir()?;
/// let mut history = History::new();
/// history.record(0).accuracy(0.5);
/// write_history(&history, &dir.path().join("fedavg"))?;
/// assert!(dir.path().join("fedavg/history.jsonl").exists());
/// assert!(dir.path().join("fedavg/history_rounds.csv").exists());
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn write_history(history: &History, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut jsonl = HistoryWriter::create(dir.join("history.jsonl"))?;
    jsonl.write_all(history)?;
    history.write_csv(dir.join("history"))?;
    Ok(())
}

/// A Markdown table with a `round` column (from 1) and one column per run: run `i`'s value
/// `columns[i].1[r]` in row `r + 1`, with 4 decimals, `-` where a run has fewer rounds. The
/// caller may append summary rows.
///
/// ```
/// # use flspec_examples::example_support::rounds_table;
/// let table = rounds_table(&[("FedAvg".to_string(), vec![0.5, 0.9]), ("median".to_string(), vec![0.4])]);
/// assert_eq!(
///     table,
///     "| round | FedAvg | median |\n|---:|---:|---:|\n| 1 | 0.5000 | 0.4000 |\n| 2 | 0.9000 | - |\n"
/// );
/// ```
pub fn rounds_table(columns: &[(String, Vec<f64>)]) -> String {
    let mut out = String::from("| round |");
    for (name, _) in columns {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|---:|");
    out.push_str(&"---:|".repeat(columns.len()));
    out.push('\n');
    let rounds = columns.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    for round in 0..rounds {
        let _ = write!(out, "| {} |", round + 1);
        for (_, values) in columns {
            match values.get(round) {
                Some(v) => {
                    let _ = write!(out, " {v:.4} |");
                }
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out
}

/// The width of each column: its widest cell, header included.
///
/// ```
/// # use flspec_examples::example_support::column_widths;
/// let body = vec![vec!["1".to_string(), "0.9000".to_string()]];
/// assert_eq!(column_widths(&["Round", "FedAvg"], &body), [5, 6]);
/// ```
pub fn column_widths<H: AsRef<str>, C: AsRef<[String]>>(headers: &[H], body: &[C]) -> Vec<usize> {
    (0..headers.len())
        .map(|c| {
            body.iter()
                .map(|r| r.as_ref()[c].len())
                .chain([headers[c].as_ref().len()])
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// A Markdown table with every column right-aligned and padded to its widest cell.
///
/// ```
/// # use flspec_examples::example_support::markdown_table;
/// let body = vec![vec!["0".to_string(), "0.1000".to_string()]];
/// assert_eq!(
///     markdown_table(&["Round".to_string(), "fedavg".to_string()], &body),
///     "| Round | fedavg |\n|------:|-------:|\n|     0 | 0.1000 |\n"
/// );
/// ```
pub fn markdown_table(headers: &[String], body: &[Vec<String>]) -> String {
    let widths = column_widths(headers, body);
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(s, " {cell:>w$} |");
        }
        s.push('\n');
        s
    };
    let mut out = line(headers);
    out.push('|');
    for w in &widths {
        out.push_str(&"-".repeat(w + 1));
        out.push_str(":|");
    }
    out.push('\n');
    for row in body {
        out.push_str(&line(row));
    }
    out
}

/// A line chart (`flspec::fl::history::plot::LineChart`) of one series per run, written to
/// `path` (.svg or .png); a warning (drawn without text) goes to stderr. Returns the file
/// written.
///
/// # Errors
/// Drawing or writing failed, or this build has no `plot` feature (on by default).
///
/// ```no_run
/// # use flspec_examples::example_support::line_chart;
/// let series = vec![("FedAvg".to_string(), vec![(1, 0.5), (2, 0.9)])];
/// line_chart("MNIST", None, "test accuracy", series, "accuracy.svg".as_ref())?;
/// # Ok::<(), anyhow::Error>(())
/// ```
#[cfg(feature = "plot")]
pub fn line_chart(
    title: &str,
    x_label: Option<&str>,
    y_label: &str,
    series: Vec<(String, Vec<(u64, f64)>)>,
    path: &Path,
) -> anyhow::Result<PathBuf> {
    let mut chart = flspec::fl::history::plot::LineChart::new(title).y_label(y_label);
    if let Some(x_label) = x_label {
        chart = chart.x_label(x_label);
    }
    for (name, points) in series {
        chart = chart.series(name, points);
    }
    let drawn = chart.draw(path)?;
    if let Some(warning) = drawn.warning {
        eprintln!("{warning}");
    }
    Ok(drawn.path)
}

/// Without the `plot` feature there is no chart: an error that says so.
///
/// # Errors
/// Always.
#[cfg(not(feature = "plot"))]
pub fn line_chart(
    _title: &str,
    _x_label: Option<&str>,
    _y_label: &str,
    _series: Vec<(String, Vec<(u64, f64)>)>,
    _path: &Path,
) -> anyhow::Result<PathBuf> {
    bail!("`--plot` needs the `plot` feature (on by default; this build turned it off)")
}

/// Refuses `--plot` up front (before any long run) in a build without the `plot` feature.
///
/// # Errors
/// `wanted` and no `plot` feature.
///
/// ```
/// # use flspec_examples::example_support::check_plot_feature;
/// check_plot_feature(false)?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn check_plot_feature(wanted: bool) -> anyhow::Result<()> {
    if wanted && !cfg!(feature = "plot") {
        bail!("`--plot` needs the `plot` feature (on by default; this build turned it off)");
    }
    Ok(())
}

/// The median of the values that are not NaN (the mean of the middle two for an even count);
/// NaN when there is none. For the benches' repetitions.
///
/// ```
/// # use flspec_examples::example_support::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
/// assert!(median(&[]).is_nan());
/// ```
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The smallest value (NaNs skipped; infinity for none).
///
/// ```
/// # use flspec_examples::example_support::min;
/// assert_eq!(min(&[3.0, 1.0, 2.0]), 1.0);
/// ```
pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The largest value (NaNs skipped; minus infinity for none).
///
/// ```
/// # use flspec_examples::example_support::max;
/// assert_eq!(max(&[3.0, 1.0, 2.0]), 3.0);
/// ```
pub fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// CPU seconds used by this process so far, all threads (64-bit Linux; NaN elsewhere).
///
/// ```
/// # use flspec_examples::example_support::cpu_seconds;
/// let used = cpu_seconds();
/// assert!(used >= 0.0 || used.is_nan());
/// ```
pub fn cpu_seconds() -> f64 {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec (two 64-bit fields on 64-bit Linux).
        if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.sec as f64 + ts.nsec as f64 * 1e-9;
        }
    }
    f64::NAN
}
