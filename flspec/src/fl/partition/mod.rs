//! Partitions of a data set across sites: which sample indices each site holds.
//!
//! A [`Partitioner`] splits a label vector (`&[u8]` or `&[usize]`, labels below `n_classes`)
//! into one index list per site. Every sample goes to exactly one site, and the same seed gives
//! the same partition. The schemes are Flower Datasets' partitioners:
//!
//! | spec string     | [`Partitioner`]                 | what each site gets                       |
//! |-----------------|---------------------------------|-------------------------------------------|
//! | `iid`           | [`Partitioner::Iid`]            | an even share of a shuffle                |
//! | `dirichlet:0.3` | [`Partitioner::Dirichlet`]      | per class, a Dir(α) share (label skew)    |
//! | `shards:2`      | [`Partitioner::Shards`]         | exactly k classes (pathological non-IID)  |
//! | `quantity:0.5`  | [`Partitioner::Quantity`]       | a Dir(α) share of the samples, IID labels |
//! | `strided`       | [`Partitioner::Strided`]        | every n-th sample, from its own index     |
//!
//! [`LabelHistogram`] counts each site's labels and prints them as a table.
//!
//! ```
//! use flspec::fl::partition::Partitioner;
//!
//! let labels: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
//! let part: Partitioner = "dirichlet:0.3".parse()?;
//! let sites = part.partition(&labels, 10, 4, 42)?;
//! assert_eq!(sites.len(), 4);
//! assert_eq!(sites.sites().iter().map(Vec::len).sum::<usize>(), 1000);
//! println!("{}", sites.histogram(&labels, 10)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod rng;

use std::fmt;
use std::str::FromStr;

/// Flower Datasets' default smallest partition for [`Partitioner::Dirichlet`] and
/// [`Partitioner::Quantity`] (`min_partition_size=10`).
pub const DEFAULT_MIN_PARTITION_SIZE: usize = 10;

/// Flower Datasets' number of draws before giving up on `min_partition_size` (10).
pub const MAX_DRAWS: usize = 10;

/// The spec strings [`Partitioner::from_str`] takes, for error messages and `--help`.
pub const SPEC_CHOICES: &str = "iid, dirichlet:<alpha> (e.g. dirichlet:0.3), \
     shards:<classes per site> (e.g. shards:2), quantity:<alpha> (e.g. quantity:0.5), strided; \
     dirichlet and quantity take an optional smallest site size, e.g. dirichlet:0.3/min=20";

/// How to split a data set across sites.
///
/// ```
/// use flspec::fl::partition::Partitioner;
///
/// let labels = [0u8, 1, 0, 1, 2, 2];
/// let sites = Partitioner::Strided.partition(&labels, 3, 2, 0)?;
/// assert_eq!(sites.sites(), &[vec![0, 2, 4], vec![1, 3, 5]]);
/// # Ok::<(), flspec::fl::partition::PartitionError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Partitioner {
    /// Shuffle, then split into even contiguous parts (the first `n % sites` sites get one
    /// sample more), like Flower Datasets' `IidPartitioner`.
    Iid,
    /// Label skew, like Flower Datasets' `DirichletPartitioner` (without self-balancing): for
    /// each class, proportions `p ~ Dir(alpha, …, alpha)` across the sites, and the class's
    /// shuffled samples are cut at `floor(cumsum(p) · count)`. If a site ends with fewer than
    /// `min(min_partition_size, n / sites)` samples, all classes are drawn again, up to
    /// [`MAX_DRAWS`] times. Small `alpha` (0.1) is very skewed; large `alpha` (100) is close to
    /// IID.
    Dirichlet {
        /// The concentration α (> 0).
        alpha: f64,
        /// The smallest site wanted (Flower's default: [`DEFAULT_MIN_PARTITION_SIZE`]).
        min_partition_size: usize,
    },
    /// Pathological non-IID (McMahan et al. 2017's two shards per client; Flower Datasets'
    /// `PathologicalPartitioner`): each site holds exactly `classes_per_site` distinct classes.
    /// Classes are dealt in a shuffled cyclic order (site `i` gets positions `i·k … i·k + k − 1`),
    /// so each class goes to as many sites as possible evenly (exactly `sites · k / n_classes`
    /// when that divides), and each class's shuffled samples are split evenly among its sites.
    Shards {
        /// Classes per site, `1..=n_classes`.
        classes_per_site: usize,
    },
    /// Quantity skew (labels IID): the samples are shuffled, each site first takes
    /// `m = min(min_partition_size, n / sites)` of them, and the other `n − m·sites` are cut in
    /// proportions `p ~ Dir(alpha, …, alpha)`. Never redraws, so it never fails on size; small
    /// `alpha` gives a few large sites and many of size about `m`.
    Quantity {
        /// The concentration α (> 0).
        alpha: f64,
        /// The smallest site wanted.
        min_partition_size: usize,
    },
    /// Site `i` takes samples `i, i + sites, i + 2·sites, …`: the SecAgg MNIST example's split
    /// (`Dataset::shard`). Ignores the seed.
    Strided,
}

impl Partitioner {
    /// [`Partitioner::Dirichlet`] with Flower's default `min_partition_size` (10).
    ///
    /// ```
    /// use flspec::fl::partition::Partitioner;
    /// assert_eq!(Partitioner::dirichlet(0.3), "dirichlet:0.3".parse().unwrap());
    /// ```
    pub fn dirichlet(alpha: f64) -> Self {
        Partitioner::Dirichlet {
            alpha,
            min_partition_size: DEFAULT_MIN_PARTITION_SIZE,
        }
    }

    /// [`Partitioner::Quantity`] with the default `min_partition_size` (10).
    ///
    /// ```
    /// use flspec::fl::partition::Partitioner;
    /// assert_eq!(Partitioner::quantity(0.5), "quantity:0.5".parse().unwrap());
    /// ```
    pub fn quantity(alpha: f64) -> Self {
        Partitioner::Quantity {
            alpha,
            min_partition_size: DEFAULT_MIN_PARTITION_SIZE,
        }
    }

    /// Splits the samples with these `labels` (each below `n_classes`) across `sites` sites,
    /// reproducibly for `seed`. Each site's indices come shuffled (sorted for
    /// [`Partitioner::Strided`]).
    ///
    /// # Errors
    /// [`PartitionError`] when there are no sites, a label is out of range, a parameter is out
    /// of range, or the data is too small for the scheme.
    ///
    /// ```
    /// use flspec::fl::partition::Partitioner;
    ///
    /// let labels: Vec<usize> = (0..100).map(|i| i % 5).collect();
    /// let sites = Partitioner::Shards { classes_per_site: 2 }.partition(&labels, 5, 5, 1)?;
    /// let hist = sites.histogram(&labels, 5)?;
    /// assert!((0..5).all(|s| hist.classes_present(s) == 2));
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn partition<L: Copy + Into<usize>>(
        &self,
        labels: &[L],
        n_classes: usize,
        sites: usize,
        seed: u64,
    ) -> Result<Partition, PartitionError> {
        if sites == 0 {
            return Err(PartitionError::NoSites);
        }
        let by_class = by_class(labels, n_classes)?;
        let n = labels.len();
        let mut rng = rng::seeded(seed, 0);
        let mut out = match *self {
            Partitioner::Iid => {
                let mut all: Vec<usize> = (0..n).collect();
                rng::shuffle(&mut rng, &mut all);
                even_split(&all, sites)
            }
            Partitioner::Strided => {
                return Ok(Partition {
                    sites: (0..sites)
                        .map(|i| (i..n).step_by(sites).collect())
                        .collect(),
                });
            }
            Partitioner::Dirichlet {
                alpha,
                min_partition_size,
            } => {
                check_alpha(alpha)?;
                let min = min_partition_size.min(n / sites);
                redraw(min, |_| {
                    let mut out = vec![Vec::new(); sites];
                    for class in &by_class {
                        let mut idx = class.clone();
                        rng::shuffle(&mut rng, &mut idx);
                        let p = rng::dirichlet(&mut rng, alpha, sites);
                        for (site, part) in cut(&idx, &p).into_iter().enumerate() {
                            out[site].extend_from_slice(part);
                        }
                    }
                    out
                })?
            }
            Partitioner::Quantity {
                alpha,
                min_partition_size,
            } => {
                check_alpha(alpha)?;
                let min = min_partition_size.min(n / sites);
                let mut all: Vec<usize> = (0..n).collect();
                rng::shuffle(&mut rng, &mut all);
                // Every site first takes `min`; the rest is cut in Dir(α) proportions.
                let (floor, rest) = all.split_at(min * sites);
                let p = rng::dirichlet(&mut rng, alpha, sites);
                floor
                    .chunks(min.max(1))
                    .map(<[usize]>::to_vec)
                    .chain(std::iter::repeat(Vec::new()))
                    .zip(cut(rest, &p))
                    .map(|(mut site, extra)| {
                        site.extend_from_slice(extra);
                        site
                    })
                    .collect()
            }
            Partitioner::Shards {
                classes_per_site: k,
            } => {
                if k == 0 || k > n_classes {
                    return Err(PartitionError::ClassesPerSite { k, n_classes });
                }
                let mut order: Vec<usize> = (0..n_classes).collect();
                rng::shuffle(&mut rng, &mut order);
                // holders[c]: the sites holding class c, in site order.
                let mut holders = vec![Vec::new(); n_classes];
                for site in 0..sites {
                    for j in 0..k {
                        holders[order[(site * k + j) % n_classes]].push(site);
                    }
                }
                let mut out = vec![Vec::new(); sites];
                for (class, members) in by_class.iter().enumerate() {
                    let holders = &holders[class];
                    if holders.is_empty() {
                        // More classes than sites·k: nobody was dealt this class. Keep every
                        // sample assigned: deal its samples evenly over all sites.
                        let mut idx = members.clone();
                        rng::shuffle(&mut rng, &mut idx);
                        for (site, part) in even_split(&idx, sites).into_iter().enumerate() {
                            out[site].extend(part);
                        }
                        continue;
                    }
                    if members.len() < holders.len() {
                        return Err(PartitionError::TooFewSamples {
                            class,
                            samples: members.len(),
                            sites: holders.len(),
                        });
                    }
                    let mut idx = members.clone();
                    rng::shuffle(&mut rng, &mut idx);
                    for (part, &site) in even_split(&idx, holders.len()).into_iter().zip(holders) {
                        out[site].extend(part);
                    }
                }
                out
            }
        };
        for site in &mut out {
            rng::shuffle(&mut rng, site);
        }
        Ok(Partition { sites: out })
    }
}

/// The sample indices of each class, in order.
fn by_class<L: Copy + Into<usize>>(
    labels: &[L],
    n_classes: usize,
) -> Result<Vec<Vec<usize>>, PartitionError> {
    let mut by_class = vec![Vec::new(); n_classes];
    for (i, &label) in labels.iter().enumerate() {
        let label: usize = label.into();
        by_class
            .get_mut(label)
            .ok_or(PartitionError::Label {
                index: i,
                label,
                n_classes,
            })?
            .push(i);
    }
    Ok(by_class)
}

fn check_alpha(alpha: f64) -> Result<(), PartitionError> {
    if alpha > 0.0 && alpha.is_finite() {
        Ok(())
    } else {
        Err(PartitionError::Alpha(alpha))
    }
}

/// Draws until every site has at least `min` samples, at most [`MAX_DRAWS`] times.
fn redraw(
    min: usize,
    mut draw: impl FnMut(usize) -> Vec<Vec<usize>>,
) -> Result<Vec<Vec<usize>>, PartitionError> {
    let mut smallest = 0;
    for attempt in 0..MAX_DRAWS {
        let out = draw(attempt);
        smallest = out.iter().map(Vec::len).min().unwrap_or(0);
        if smallest >= min {
            return Ok(out);
        }
    }
    Err(PartitionError::MinPartitionSize {
        min,
        smallest,
        draws: MAX_DRAWS,
    })
}

/// Cuts `idx` at `floor(cumsum(p) · len)` (NumPy's `np.split` at those points), the last part
/// taking the rest.
fn cut<'a>(idx: &'a [usize], p: &[f64]) -> Vec<&'a [usize]> {
    let len = idx.len();
    let mut parts = Vec::with_capacity(p.len());
    let mut start = 0;
    let mut acc = 0.0;
    for (i, &pi) in p.iter().enumerate() {
        acc += pi;
        let end = if i + 1 == p.len() {
            len
        } else {
            ((acc * len as f64) as usize).clamp(start, len)
        };
        parts.push(&idx[start..end]);
        start = end;
    }
    parts
}

/// `np.array_split`: `parts` contiguous pieces, the first `len % parts` one longer.
fn even_split(idx: &[usize], parts: usize) -> Vec<Vec<usize>> {
    let (q, r) = (idx.len() / parts, idx.len() % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let end = start + q + usize::from(i < r);
            let part = idx[start..end].to_vec();
            start = end;
            part
        })
        .collect()
}

/// One index list per site: the samples each site holds. Every sample is in exactly one list.
///
/// ```
/// use flspec::fl::partition::Partitioner;
///
/// let labels = [0u8; 10];
/// let p = Partitioner::Iid.partition(&labels, 1, 3, 7)?;
/// assert_eq!(p.sites().iter().map(Vec::len).collect::<Vec<_>>(), [4, 3, 3]);
/// assert_eq!(p.site(0).len(), 4);
/// # Ok::<(), flspec::fl::partition::PartitionError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    sites: Vec<Vec<usize>>,
}

impl Partition {
    /// Every site's indices, site by site.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let p = Partitioner::Strided.partition(&[0u8, 0, 0], 1, 2, 0)?;
    /// assert_eq!(p.sites(), &[vec![0, 2], vec![1]]);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn sites(&self) -> &[Vec<usize>] {
        &self.sites
    }

    /// Site `i`'s indices.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let p = Partitioner::Strided.partition(&[0u8, 0, 0], 1, 2, 0)?;
    /// assert_eq!(p.site(1), &[1]);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn site(&self, i: usize) -> &[usize] {
        &self.sites[i]
    }

    /// The number of sites.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// assert_eq!(Partitioner::Iid.partition(&[0u8; 5], 1, 2, 0)?.len(), 2);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Whether there are no sites (never, for a partition [`Partitioner::partition`] made).
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// assert!(!Partitioner::Iid.partition(&[0u8; 5], 1, 2, 0)?.is_empty());
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The index lists, by value.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let lists = Partitioner::Strided.partition(&[0u8; 4], 1, 2, 0)?.into_sites();
    /// assert_eq!(lists, [vec![0, 2], vec![1, 3]]);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn into_sites(self) -> Vec<Vec<usize>> {
        self.sites
    }

    /// Counts each site's labels.
    ///
    /// # Errors
    /// [`PartitionError::Label`] if an index is past `labels` or a label is not below
    /// `n_classes` (pass the labels the partition was made from).
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let labels = [0u8, 1, 1, 1];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// assert_eq!(h.counts(0), &[1, 1]);
    /// assert_eq!(h.counts(1), &[0, 2]);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn histogram<L: Copy + Into<usize>>(
        &self,
        labels: &[L],
        n_classes: usize,
    ) -> Result<LabelHistogram, PartitionError> {
        let mut counts = vec![vec![0usize; n_classes]; self.sites.len()];
        for (site, idx) in self.sites.iter().enumerate() {
            for &i in idx {
                let label: usize = labels
                    .get(i)
                    .copied()
                    .ok_or(PartitionError::Index {
                        index: i,
                        samples: labels.len(),
                    })?
                    .into();
                *counts[site].get_mut(label).ok_or(PartitionError::Label {
                    index: i,
                    label,
                    n_classes,
                })? += 1;
            }
        }
        Ok(LabelHistogram { counts })
    }
}

/// Each site's label counts; `Display` prints a table (one row per site, one column per class,
/// then the total).
///
/// ```
/// use flspec::fl::partition::Partitioner;
///
/// let labels = [0u8, 1, 2, 0, 1, 1];
/// let h = Partitioner::Strided.partition(&labels, 3, 2, 0)?.histogram(&labels, 3)?;
/// assert_eq!(h.to_string(), "\
/// site  0  1  2  total
///    0  1  1  1      3
///    1  1  2  0      3
/// ", "got\n{h}");
/// # Ok::<(), flspec::fl::partition::PartitionError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelHistogram {
    counts: Vec<Vec<usize>>,
}

impl LabelHistogram {
    /// Site `site`'s count per class.
    ///
    /// # Panics
    /// If `site` is not a site.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let labels = [0u8, 1];
    /// let h = Partitioner::Strided.partition(&labels, 2, 1, 0)?.histogram(&labels, 2)?;
    /// assert_eq!(h.counts(0), &[1, 1]);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn counts(&self, site: usize) -> &[usize] {
        &self.counts[site]
    }

    /// The number of sites.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let labels = [0u8, 1];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// assert_eq!(h.sites(), 2);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn sites(&self) -> usize {
        self.counts.len()
    }

    /// How many classes site `site` holds at least one sample of.
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let labels = [0u8, 1, 0, 0];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// assert_eq!((h.classes_present(0), h.classes_present(1)), (1, 2));
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn classes_present(&self, site: usize) -> usize {
        self.counts[site].iter().filter(|&&c| c > 0).count()
    }

    /// The Shannon entropy (in bits) of site `site`'s label distribution: `log2(n_classes)` for
    /// balanced labels, 0 for a single class (and for an empty site).
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let labels = [0u8, 1, 0, 0];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// assert_eq!(h.entropy(0), 0.0);
    /// assert!((h.entropy(1) - 1.0).abs() < 1e-12);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn entropy(&self, site: usize) -> f64 {
        let counts = &self.counts[site];
        let total: usize = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / total as f64;
                -p * p.log2()
            })
            .sum()
    }

    /// The mean of [`LabelHistogram::entropy`] over the sites: a single number for how skewed
    /// a partition is (lower is more skewed).
    ///
    /// ```
    /// # use flspec::fl::partition::Partitioner;
    /// let labels = [0u8, 1, 0, 0];
    /// let h = Partitioner::Strided.partition(&labels, 2, 2, 0)?.histogram(&labels, 2)?;
    /// assert!((h.mean_entropy() - 0.5).abs() < 1e-12);
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    pub fn mean_entropy(&self) -> f64 {
        if self.counts.is_empty() {
            return 0.0;
        }
        (0..self.sites()).map(|s| self.entropy(s)).sum::<f64>() / self.sites() as f64
    }
}

impl fmt::Display for LabelHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_classes = self.counts.first().map_or(0, Vec::len);
        let max = self.counts.iter().flatten().copied().max().unwrap_or(0);
        let totals: Vec<usize> = self.counts.iter().map(|c| c.iter().sum()).collect();
        let w = max
            .to_string()
            .len()
            .max(n_classes.saturating_sub(1).to_string().len());
        let tw = totals
            .iter()
            .max()
            .map_or(0, |t| t.to_string().len())
            .max("total".len());
        let sw = self
            .counts
            .len()
            .saturating_sub(1)
            .to_string()
            .len()
            .max("site".len());
        write!(f, "{:>sw$}", "site")?;
        for c in 0..n_classes {
            write!(f, "  {c:>w$}")?;
        }
        writeln!(f, "  {:>tw$}", "total")?;
        for (site, counts) in self.counts.iter().enumerate() {
            write!(f, "{site:>sw$}")?;
            for c in counts {
                write!(f, "  {c:>w$}")?;
            }
            writeln!(f, "  {:>tw$}", totals[site])?;
        }
        Ok(())
    }
}

impl FromStr for Partitioner {
    type Err = PartitionError;

    /// Parses `iid`, `dirichlet:<alpha>`, `shards:<k>`, `quantity:<alpha>` or `strided`.
    /// The Dirichlet and quantity forms take Flower's `min_partition_size` of 10, or the one
    /// given after `/min=` (`dirichlet:0.1/min=0`).
    ///
    /// ```
    /// use flspec::fl::partition::Partitioner;
    ///
    /// assert_eq!("shards:2".parse::<Partitioner>()?, Partitioner::Shards { classes_per_site: 2 });
    /// let err = "dirichlet".parse::<Partitioner>().unwrap_err().to_string();
    /// assert!(err.contains("iid, dirichlet:<alpha>"), "{err}");
    /// # Ok::<(), flspec::fl::partition::PartitionError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| PartitionError::Spec {
            spec: s.to_string(),
            why: why.to_string(),
        };
        let (name, arg) = match s.trim().split_once(':') {
            Some((name, arg)) => (name.trim(), Some(arg.trim())),
            None => (s.trim(), None),
        };
        let alpha = |arg: Option<&str>| -> Result<f64, PartitionError> {
            let arg = arg.ok_or_else(|| bad("it needs an alpha, such as `:0.3`"))?;
            let alpha: f64 = arg
                .parse()
                .map_err(|_| bad(&format!("`{arg}` is not a number")))?;
            if alpha > 0.0 && alpha.is_finite() {
                Ok(alpha)
            } else {
                Err(bad("alpha must be a finite number above 0"))
            }
        };
        match (name, arg) {
            ("iid", None) => Ok(Partitioner::Iid),
            ("strided", None) => Ok(Partitioner::Strided),
            ("iid" | "strided", Some(_)) => Err(bad(&format!("`{name}` takes no argument"))),
            ("dirichlet" | "quantity", arg) => {
                let (arg, min) = match arg.and_then(|a| a.split_once('/')) {
                    Some((a, min)) => {
                        let m = min
                            .trim()
                            .strip_prefix("min=")
                            .and_then(|m| m.trim().parse().ok());
                        let m = m.ok_or_else(|| bad(&format!("`/{min}` is not `/min=<size>`")))?;
                        (Some(a.trim()), m)
                    }
                    None => (arg, DEFAULT_MIN_PARTITION_SIZE),
                };
                let alpha = alpha(arg)?;
                Ok(if name == "dirichlet" {
                    Partitioner::Dirichlet {
                        alpha,
                        min_partition_size: min,
                    }
                } else {
                    Partitioner::Quantity {
                        alpha,
                        min_partition_size: min,
                    }
                })
            }
            ("shards", arg) => {
                let arg = arg.ok_or_else(|| bad("it needs a number of classes, such as `:2`"))?;
                match arg.parse::<usize>() {
                    Ok(k) if k > 0 => Ok(Partitioner::Shards {
                        classes_per_site: k,
                    }),
                    _ => Err(bad(&format!("`{arg}` is not a number of classes above 0"))),
                }
            }
            _ => Err(bad("unknown partition")),
        }
    }
}

impl fmt::Display for Partitioner {
    /// The spec string [`Partitioner::from_str`] reads back (with `/min=<size>` when the
    /// smallest site size is not the default).
    ///
    /// ```
    /// use flspec::fl::partition::Partitioner;
    /// assert_eq!(Partitioner::dirichlet(0.3).to_string(), "dirichlet:0.3");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let min = |f: &mut fmt::Formatter<'_>, m: usize| {
            if m == DEFAULT_MIN_PARTITION_SIZE {
                Ok(())
            } else {
                write!(f, "/min={m}")
            }
        };
        match *self {
            Partitioner::Iid => f.write_str("iid"),
            Partitioner::Strided => f.write_str("strided"),
            Partitioner::Shards { classes_per_site } => write!(f, "shards:{classes_per_site}"),
            Partitioner::Dirichlet {
                alpha,
                min_partition_size,
            } => {
                write!(f, "dirichlet:{alpha}")?;
                min(f, min_partition_size)
            }
            Partitioner::Quantity {
                alpha,
                min_partition_size,
            } => {
                write!(f, "quantity:{alpha}")?;
                min(f, min_partition_size)
            }
        }
    }
}

/// What went wrong making a partition.
///
/// ```
/// use flspec::fl::partition::{PartitionError, Partitioner};
/// let err = Partitioner::Iid.partition(&[3u8], 2, 1, 0).unwrap_err();
/// assert!(matches!(err, PartitionError::Label { label: 3, .. }));
/// ```
#[derive(Clone, PartialEq, thiserror::Error)]
pub enum PartitionError {
    /// The spec string did not parse.
    #[error("partition `{spec}`: {why}; choose one of: {SPEC_CHOICES}")]
    Spec {
        /// What was given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// Zero sites were asked for.
    #[error("a partition needs at least one site; ask for 1 or more")]
    NoSites,
    /// A label is not below `n_classes`.
    #[error(
        "sample {index} has label {label}, not below n_classes = {n_classes}; \
         pass the number of classes of the data set"
    )]
    Label {
        /// The sample.
        index: usize,
        /// Its label.
        label: usize,
        /// The number of classes given.
        n_classes: usize,
    },
    /// A partition holds an index past the label vector.
    #[error(
        "the partition holds sample {index} but there are {samples} labels; \
         pass the labels the partition was made from"
    )]
    Index {
        /// The index.
        index: usize,
        /// The number of labels given.
        samples: usize,
    },
    /// α is not a finite number above 0.
    #[error("alpha = {0} is not a finite number above 0; use e.g. 0.1 (skewed) to 100 (near IID)")]
    Alpha(f64),
    /// `classes_per_site` is 0 or more than `n_classes`.
    #[error("shards: {k} classes per site is not within 1..={n_classes} (the number of classes)")]
    ClassesPerSite {
        /// Classes per site asked for.
        k: usize,
        /// The number of classes.
        n_classes: usize,
    },
    /// A class has fewer samples than sites that should hold it.
    #[error(
        "shards: class {class} has {samples} samples for {sites} sites; \
         use fewer sites or fewer classes per site"
    )]
    TooFewSamples {
        /// The class.
        class: usize,
        /// Its samples.
        samples: usize,
        /// The sites dealt it.
        sites: usize,
    },
    /// Every draw left a site smaller than the minimum.
    #[error(
        "after {draws} draws the smallest site still had {smallest} samples, below the \
         minimum of {min}; raise alpha, use fewer sites, or lower min_partition_size"
    )]
    MinPartitionSize {
        /// The minimum asked for (capped at samples / sites).
        min: usize,
        /// The smallest site of the last draw.
        smallest: usize,
        /// How many draws were made.
        draws: usize,
    },
}

/// Prints the message, as flspec's errors do, so that `fn main() -> Result<(), PartitionError>` shows
/// what went wrong rather than the variant's fields.
impl core::fmt::Debug for PartitionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::error::write_chain(self, f)
    }
}
