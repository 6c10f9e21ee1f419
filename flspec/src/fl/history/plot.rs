//! Charts (cargo feature `plot`): metrics over rounds as line charts, several runs to a chart,
//! and each site's label counts as stacked bars. The file's extension picks the format:
//! `.svg` or `.png`.
//!
//! Text (title, axes, legend) needs a font. The first chart drawn looks for one on the system
//! ([`system_font`]: `FLSPEC_FONT`, then DejaVu Sans or Liberation Sans in the usual places;
//! Debian's `fonts-dejavu-core` provides `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`).
//! If none is found, charts are drawn without any text and [`Drawn::warning`] says so; a run
//! never fails for a missing font.
//!
//! ```
//! use flspec::fl::history::History;
//! use flspec::fl::history::plot::LineChart;
//!
//! let (mut fedavg, mut fedprox) = (History::new(), History::new());
//! for round in 1..=5 {
//!     fedavg.record(round).accuracy(0.5 + 0.05 * round as f64);
//!     fedprox.record(round).accuracy(0.55 + 0.06 * round as f64);
//! }
//! let dir = tempfile::tempdir()?;
//! let drawn = LineChart::new("Validation accuracy")
//!     .y_label("accuracy")
//!     .history("FedAvg", &fedavg, "accuracy")
//!     .history("FedProx mu=0.01", &fedprox, "accuracy")
//!     .draw(dir.path().join("accuracy.svg"))?;
//! if let Some(warning) = &drawn.warning {
//!     eprintln!("{warning}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{History, HistoryError};
use crate::fl::partition::LabelHistogram;

/// The environment variable naming a font file (TrueType or OpenType) to draw text with.
pub const FONT_ENV: &str = "FLSPEC_FONT";

/// Where [`system_font`] looks, in order, after [`FONT_ENV`].
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Ten colours that tell lines apart (matplotlib's `tab10`).
const COLORS: [RGBColor; 10] = [
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

/// What drawing a chart did: the file written, and a warning if it was drawn without text.
///
/// ```
/// # use flspec::fl::history::plot::LineChart;
/// let dir = tempfile::tempdir()?;
/// let drawn = LineChart::new("t").series("a", [(1, 1.0)]).draw(dir.path().join("a.svg"))?;
/// assert!(drawn.path.exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Drawn {
    /// The file written.
    pub path: PathBuf,
    /// Set when no font was found and the chart has no text; says how to fix it.
    pub warning: Option<String>,
}

/// The font file text is drawn with, found and registered with plotters (as `sans-serif`,
/// `serif` and `monospace`) on the first call; `None` if there is none. Looks at
/// [`FONT_ENV`], then [`FONT_CANDIDATES`], then for `DejaVuSans.ttf` or
/// `LiberationSans-Regular.ttf` under `/usr/share/fonts`, `/usr/local/share/fonts` and
/// `~/.local/share/fonts`. The font's bytes are kept for the rest of the process.
///
/// Code that draws with plotters itself in a program where the `plot` feature is on must call
/// this first: the feature switches plotters to fonts registered at run time.
///
/// ```
/// use flspec::fl::history::plot::system_font;
/// match system_font() {
///     Some(path) => println!("drawing text with {}", path.display()),
///     None => println!("no font: charts will have no text"),
/// }
/// ```
pub fn system_font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let from_env = std::env::var_os(FONT_ENV).map(PathBuf::from);
        let found = from_env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
            .chain(search_font_dirs())
            .find_map(|path| register(&path).then_some(path));
        if found.is_none() {
            tracing::warn!(
                "no font found: charts will be drawn without text; install fonts-dejavu-core \
                 or set {FONT_ENV} to a .ttf file"
            );
        }
        found
    })
    .as_deref()
}

/// Registers the font at `path` with plotters; false if it is missing or not a font.
fn register(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // plotters keeps `&'static` font data; this runs once per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    ["sans-serif", "serif", "monospace"]
        .iter()
        .all(|family| plotters::style::register_font(family, FontStyle::Normal, bytes).is_ok())
}

fn search_font_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/share/fonts"),
        PathBuf::from("/usr/local/share/fonts"),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/share/fonts"));
    }
    let mut found = Vec::new();
    let mut stack = dirs;
    let mut budget = 10_000; // directory entries to look at, at most
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            budget -= 1;
            if budget == 0 {
                return found;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n == "DejaVuSans.ttf" || n == "LiberationSans-Regular.ttf")
            {
                found.push(path);
            }
        }
    }
    found
}

fn no_font_warning(path: &Path) -> String {
    format!(
        "{}: drawn without text (no font found); install a font (Debian: apt-get install \
         fonts-dejavu-core) or set {FONT_ENV} to a .ttf file",
        path.display()
    )
}

enum Format {
    Svg,
    Png,
}

fn format_of(path: &Path) -> Result<Format, HistoryError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(HistoryError::Plot {
            path: path.to_path_buf(),
            why: "the file name must end in .svg or .png".into(),
        }),
    }
}

/// A chart that draws on any plotters backend.
trait Draw {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> Result<(), String>;
}

/// Draws `chart` into an SVG or PNG file at `path`, with or without text.
fn render(
    path: &Path,
    size: (u32, u32),
    text: bool,
    chart: &impl Draw,
) -> Result<Drawn, HistoryError> {
    let format = format_of(path)?;
    let fail = |why: String| HistoryError::Plot {
        path: path.to_path_buf(),
        why,
    };
    let has_font = text && system_font().is_some();
    match format {
        Format::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            chart.draw(&root, has_font).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        Format::Png => {
            let (w, h) = size;
            let mut pixels = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
                chart.draw(&root, has_font).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            write_png(path, size, &pixels)?;
        }
    }
    Ok(Drawn {
        path: path.to_path_buf(),
        warning: (text && !has_font).then(|| no_font_warning(path)),
    })
}

fn write_png(path: &Path, (w, h): (u32, u32), rgb: &[u8]) -> Result<(), HistoryError> {
    let file = std::fs::File::create(path).map_err(|e| HistoryError::io(path, e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(rgb))
        .map_err(|e| HistoryError::Plot {
            path: path.to_path_buf(),
            why: format!("PNG encoding failed: {e}"),
        })
}

/// A line chart of metric series over rounds, one line per series with a legend (FedAvg vs
/// FedProx μ = 0.01 vs μ = 0.1, or each collaborator's loss).
///
/// ```
/// use flspec::fl::history::plot::LineChart;
///
/// let dir = tempfile::tempdir()?;
/// LineChart::new("Training loss")
///     .x_label("round")
///     .y_label("loss")
///     .size(640, 400)
///     .series("Portland", [(1, 0.9), (2, 0.6), (3, 0.4)])
///     .series("Seattle", [(1, 1.0), (2, 0.7), (3, 0.5)])
///     .draw(dir.path().join("loss.png"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    size: (u32, u32),
    text: bool,
    series: Vec<(String, Vec<(u64, f64)>)>,
}

impl LineChart {
    /// An empty chart with this title, 800 × 500 pixels, x axis "round".
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let chart = LineChart::new("Validation accuracy");
    /// ```
    pub fn new(title: impl Into<String>) -> Self {
        LineChart {
            title: title.into(),
            x_label: "round".into(),
            y_label: String::new(),
            size: (800, 500),
            text: true,
            series: Vec::new(),
        }
    }

    /// Names the x axis.
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let chart = LineChart::new("t").x_label("epoch");
    /// ```
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Names the y axis.
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let chart = LineChart::new("t").y_label("accuracy");
    /// ```
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Sets the size in pixels (SVG and PNG alike).
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let chart = LineChart::new("t").size(1024, 640);
    /// ```
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(1), height.max(1));
        self
    }

    /// Draws no text at all (no title, axis labels or legend), as when no font is found.
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let chart = LineChart::new("t").without_text();
    /// ```
    pub fn without_text(mut self) -> Self {
        self.text = false;
        self
    }

    /// Adds a line through `(round, value)` points (in the order given); points that are not
    /// finite are left out.
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let chart = LineChart::new("t").series("FedAvg", [(1, 0.5), (2, 0.7)]);
    /// ```
    pub fn series(
        mut self,
        label: impl Into<String>,
        points: impl IntoIterator<Item = (u64, f64)>,
    ) -> Self {
        let points = points.into_iter().filter(|(_, v)| v.is_finite()).collect();
        self.series.push((label.into(), points));
        self
    }

    /// Adds a line of a history's round metric ([`History::series`]).
    ///
    /// ```
    /// # use flspec::fl::history::{History, plot::LineChart};
    /// let mut h = History::new();
    /// h.record(1).loss(0.5);
    /// let chart = LineChart::new("Loss").history("FedAvg", &h, "loss");
    /// ```
    pub fn history(self, label: impl Into<String>, history: &History, metric: &str) -> Self {
        self.series(label, history.series(metric))
    }

    /// Draws the chart to `path` (`.svg` or `.png`).
    ///
    /// # Errors
    /// [`HistoryError::Plot`] for another extension or a drawing failure,
    /// [`HistoryError::Io`] if the file cannot be written.
    ///
    /// ```
    /// # use flspec::fl::history::plot::LineChart;
    /// let dir = tempfile::tempdir()?;
    /// let chart = LineChart::new("t").series("a", [(1, 0.5), (2, 0.7)]);
    /// chart.draw(dir.path().join("a.svg"))?;
    /// assert!(chart.draw(dir.path().join("a.jpg")).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn draw(&self, path: impl AsRef<Path>) -> Result<Drawn, HistoryError> {
        render(path.as_ref(), self.size, self.text, self)
    }

    /// The legend goes in the right-hand corner away from where the lines end: bottom for
    /// rising curves (accuracy), top for falling ones (loss).
    fn legend_position(&self) -> SeriesLabelPosition {
        let (_, y) = self.ranges();
        let ends: Vec<f64> = self
            .series
            .iter()
            .filter_map(|(_, p)| p.last().map(|p| p.1))
            .collect();
        let mean = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
        if mean > (y.start + y.end) / 2.0 {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        }
    }

    fn ranges(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let points = || self.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points() {
            x0 = x0.min(x as f64);
            x1 = x1.max(x as f64);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            return (0.0..1.0, 0.0..1.0);
        }
        if x1 - x0 < 1.0 {
            x1 = x0 + 1.0;
        }
        let pad = if y1 > y0 {
            (y1 - y0) * 0.05
        } else {
            y0.abs().max(1.0) * 0.05
        };
        (x0..x1, (y0 - pad)..(y1 + pad))
    }
}

impl Draw for LineChart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> Result<(), String> {
        let c = self;
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let (xr, yr) = c.ranges();
        // At most one tick per round (so plotters never places one between two rounds), and
        // at most 10.
        let x_ticks = ((xr.end - xr.start).round() as usize + 1).clamp(2, 10);
        let mut builder = ChartBuilder::on(root);
        builder.margin(15);
        if text {
            builder
                .caption(&c.title, ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(60);
        }
        let mut chart = builder.build_cartesian_2d(xr, yr).map_err(e)?;
        let mut mesh = chart.configure_mesh();
        // Rounds are whole numbers: a tick between two of them gets no label.
        mesh.x_labels(x_ticks).x_label_formatter(&|x| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        });
        if text {
            mesh.x_desc(c.x_label.as_str()).y_desc(c.y_label.as_str());
        }
        mesh.draw().map_err(e)?;
        for (i, (label, points)) in c.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            chart
                .draw_series(
                    LineSeries::new(points.iter().map(|&(x, y)| (x as f64, y)), style)
                        .point_size(3),
                )
                .map_err(e)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        if text && !c.series.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(c.legend_position())
                .draw()
                .map_err(e)?;
        }
        Ok(())
    }
}

/// A stacked bar chart of each site's label counts (x = site, one colour per class), for a
/// [`LabelHistogram`] of a partition.
///
/// ```
/// use flspec::fl::history::plot::LabelHistogramChart;
/// use flspec::fl::partition::Partitioner;
///
/// let labels: Vec<u8> = (0..600).map(|i| (i % 10) as u8).collect();
/// let sites = "dirichlet:0.3".parse::<Partitioner>()?.partition(&labels, 10, 5, 7)?;
/// let histogram = sites.histogram(&labels, 10)?;
/// let dir = tempfile::tempdir()?;
/// LabelHistogramChart::new("Dirichlet α = 0.3", &histogram).draw(dir.path().join("labels.svg"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LabelHistogramChart<'a> {
    title: String,
    histogram: &'a LabelHistogram,
    size: (u32, u32),
    text: bool,
}

impl<'a> LabelHistogramChart<'a> {
    /// A chart of `histogram`, 800 × 500 pixels.
    ///
    /// ```
    /// # use flspec::fl::{history::plot::LabelHistogramChart, partition::Partitioner};
    /// let labels = [0u8, 1, 1, 0];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// let chart = LabelHistogramChart::new("Labels per site", &h);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn new(title: impl Into<String>, histogram: &'a LabelHistogram) -> Self {
        LabelHistogramChart {
            title: title.into(),
            histogram,
            size: (800, 500),
            text: true,
        }
    }

    /// Sets the size in pixels.
    ///
    /// ```
    /// # use flspec::fl::{history::plot::LabelHistogramChart, partition::Partitioner};
    /// # let labels = [0u8, 1];
    /// # let h = Partitioner::Strided.partition(&labels, 2, 1, 0)?.histogram(&labels, 2)?;
    /// let chart = LabelHistogramChart::new("t", &h).size(1200, 500);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(1), height.max(1));
        self
    }

    /// Draws no text at all, as when no font is found.
    ///
    /// ```
    /// # use flspec::fl::{history::plot::LabelHistogramChart, partition::Partitioner};
    /// # let labels = [0u8, 1];
    /// # let h = Partitioner::Strided.partition(&labels, 2, 1, 0)?.histogram(&labels, 2)?;
    /// let chart = LabelHistogramChart::new("t", &h).without_text();
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn without_text(mut self) -> Self {
        self.text = false;
        self
    }

    /// Draws the chart to `path` (`.svg` or `.png`).
    ///
    /// # Errors
    /// As [`LineChart::draw`].
    ///
    /// ```
    /// # use flspec::fl::{history::plot::LabelHistogramChart, partition::Partitioner};
    /// let labels = [0u8, 1, 1, 0];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// let dir = tempfile::tempdir()?;
    /// LabelHistogramChart::new("Labels", &h).draw(dir.path().join("labels.png"))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn draw(&self, path: impl AsRef<Path>) -> Result<Drawn, HistoryError> {
        render(path.as_ref(), self.size, self.text, self)
    }
}

impl Draw for LabelHistogramChart<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> Result<(), String> {
        let c = self;
        let h = c.histogram;
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let sites = h.sites();
        let classes = (0..sites).map(|s| h.counts(s).len()).max().unwrap_or(0);
        let top = (0..sites)
            .map(|s| h.counts(s).iter().sum::<usize>())
            .max()
            .unwrap_or(0)
            .max(1) as f64
            * 1.05;
        // The legend gets a column of its own on the right, so that it never hides a bar.
        let (plot_area, legend_area) = if text {
            let (w, _) = root.dim_in_pixel();
            let (left, right) = root.split_horizontally(w.saturating_sub(110));
            (left, Some(right))
        } else {
            (root.clone(), None)
        };
        let mut builder = ChartBuilder::on(&plot_area);
        builder.margin(15);
        if text {
            builder
                .caption(&c.title, ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(60);
        }
        let x_end = sites.max(1) as f64 - 0.5;
        let mut chart = builder
            .build_cartesian_2d(-0.5..x_end, 0.0..top)
            .map_err(e)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .x_labels(sites.clamp(1, 50))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"));
        if text {
            mesh.x_desc("site").y_desc("samples");
        }
        mesh.draw().map_err(e)?;
        for class in 0..classes {
            let color = class_color(class, classes);
            let bars = (0..sites).filter_map(|s| {
                let counts = h.counts(s);
                let below: usize = counts.iter().take(class).sum();
                let n = *counts.get(class)?;
                (n > 0).then(|| {
                    let x = s as f64;
                    Rectangle::new(
                        [(x - 0.4, below as f64), (x + 0.4, (below + n) as f64)],
                        color.filled(),
                    )
                })
            });
            chart.draw_series(bars).map_err(e)?;
        }
        if let Some(legend) = legend_area {
            for class in 0..classes {
                let y = 50 + 20 * class as i32;
                let color = class_color(class, classes);
                legend
                    .draw(&Rectangle::new([(8, y), (20, y + 12)], color.filled()))
                    .map_err(e)?;
                legend
                    .draw(&Text::new(
                        format!("label {class}"),
                        (26, y - 1),
                        ("sans-serif", 14),
                    ))
                    .map_err(e)?;
            }
        }
        Ok(())
    }
}

/// `tab10` for up to ten classes, evenly spaced hues beyond.
fn class_color(class: usize, classes: usize) -> RGBColor {
    if classes <= COLORS.len() {
        return COLORS[class];
    }
    let (r, g, b) = HSLColor(class as f64 / classes as f64, 0.65, 0.5).rgb();
    RGBColor(r, g, b)
}
