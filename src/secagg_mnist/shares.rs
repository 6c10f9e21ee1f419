//! Which samples each collaborator holds (`--partition SPEC`, `--partition-seed N`).
//!
//! The training set is split by a [`Partitioner`] of its labels (`flspec::fl::partition`):
//! `strided` (the default, the seed tutorial's `data[i::n]`), `iid`, `dirichlet:<alpha>`,
//! `shards:<k>` or `quantity:<alpha>`, seeded by `--partition-seed` (default
//! [`DEFAULT_PARTITION_SEED`]).
//!
//! The test set follows the training set, so that each collaborator validates on data like its
//! own:
//! - `strided`: every `n`-th test sample from the collaborator's position, exactly as the seed
//!   (so the default run's table is the seed's);
//! - any other partition: each class's test samples (in file order) are cut among the
//!   collaborators in proportion to their training samples of that class. A collaborator's test
//!   labels then have the distribution of its training labels (up to rounding): with
//!   `shards:2` it is tested on its own two digits only, with `dirichlet:0.1` on its own skew.
//!
//! Either way every test sample goes to exactly one collaborator, so the aggregated model's
//! accuracy in the results table (summed over the collaborators) is its accuracy on the whole
//! test set.
//!
//! A collaborator without training samples cannot train: [`Shares::new`] refuses such a
//! partition before anything runs and says how to avoid it (`/min=<size>`, a larger alpha, fewer
//! collaborators).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use flspec::fl::partition::{LabelHistogram, Partition, Partitioner};
use flspec_tch::datasets::mnist::{CLASSES, Mnist};

/// The default `--partition-seed`. Fixed, so that every envoy of a federation builds the same
/// partition without being told a seed.
pub const DEFAULT_PARTITION_SEED: u64 = 42;

/// Parses a `--partition` spec; the error names the flag and lists the choices.
///
/// # Errors
/// The partitioner's own error for a spec it does not read.
///
/// ```
/// use flspec_examples::secagg_mnist::shares::parse_partition;
/// assert!(parse_partition("shards:2").is_ok());
/// let err = parse_partition("dirichlet").unwrap_err().to_string();
/// assert!(err.starts_with("`--partition dirichlet`"), "{err}");
/// ```
pub fn parse_partition(spec: &str) -> anyhow::Result<Partitioner> {
    spec.parse::<Partitioner>()
        .map_err(|e| anyhow::anyhow!("`--partition {spec}`: {e}"))
}

/// The name of a partition as the flow's settings carry it: the spec, and the seed where the
/// partition uses one (`strided` does not), written as the flags that make it. Every
/// collaborator checks it against its own.
///
/// ```
/// use flspec::fl::partition::Partitioner;
/// use flspec_examples::secagg_mnist::shares::label;
/// assert_eq!(label(&Partitioner::Strided, 7), "strided");
/// assert_eq!(label(&Partitioner::dirichlet(0.3), 7), "dirichlet:0.3 --partition-seed 7");
/// ```
pub fn label(partitioner: &Partitioner, seed: u64) -> String {
    match partitioner {
        Partitioner::Strided => partitioner.to_string(),
        _ => format!("{partitioner} --partition-seed {seed}"),
    }
}

/// Every collaborator's training and test samples (indices into `Mnist::train` and
/// `Mnist::test`).
///
/// ```
/// use flspec::fl::partition::Partitioner;
/// use flspec_examples::secagg_mnist::Shares;
/// use flspec_tch::datasets::mnist::{Dataset, Mnist};
///
/// // 100 training and 20 test images, labels 0, 1, ..., 9, 0, 1, ...
/// let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
/// let data = Mnist { train: split(100), test: split(20) };
/// let shares = Shares::new(&data, "shards:5".parse()?, 2, 7)?;
/// let names = ["Bengaluru".to_string(), "Portland".to_string()];
/// print!("{}", shares.table(&data, &names)?);
/// let bengaluru = shares.site_data(&data, 0)?;
/// // Five digits each, and test samples of those digits only.
/// let digits = |d: &Dataset| d.class_counts().iter().filter(|&&n| n > 0).count();
/// assert_eq!((digits(&bengaluru.train), digits(&bengaluru.test)), (5, 5));
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Shares {
    partitioner: Partitioner,
    seed: u64,
    train: Partition,
    test: Vec<Vec<usize>>,
}

impl Shares {
    /// Splits `data` among `sites` collaborators (see the module documentation).
    ///
    /// # Errors
    /// The partitioner's error (naming `--partition`), or a collaborator left without training
    /// samples.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// use flspec::fl::partition::Partitioner;
    ///
    /// let shares = Shares::new(&data, Partitioner::Iid, 4, 42)?;
    /// assert_eq!(shares.len(), 4);
    /// // 100 samples cannot feed 101 collaborators.
    /// let err = Shares::new(&data, Partitioner::Iid, 101, 42).unwrap_err().to_string();
    /// assert!(err.contains("without training samples"), "{err}");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn new(
        data: &Mnist,
        partitioner: Partitioner,
        sites: usize,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let flag = label(&partitioner, seed);
        let train = partitioner
            .partition(data.train.labels(), CLASSES, sites, seed)
            .map_err(|e| anyhow::anyhow!("`--partition {partitioner}`: {e}"))?;
        if let Some(site) = train.sites().iter().position(Vec::is_empty) {
            let advice = match partitioner {
                Partitioner::Dirichlet { .. } | Partitioner::Quantity { .. } => format!(
                    "raise alpha, use fewer collaborators, or ask for a smallest share, e.g. `{}/min=20`",
                    partitioner
                        .to_string()
                        .split('/')
                        .next()
                        .unwrap_or_default()
                ),
                Partitioner::Shards { .. } => {
                    "use fewer collaborators or more classes per site".to_string()
                }
                Partitioner::Iid | Partitioner::Strided => {
                    format!("use at most {} collaborators", data.train.len())
                }
            };
            bail!(
                "`--partition {flag}` leaves collaborator {} of {sites} without training samples \
                 ({} samples in all), and it could not train; {advice}",
                site + 1,
                data.train.len()
            );
        }
        let test = match partitioner {
            Partitioner::Strided => (0..sites)
                .map(|i| (i..data.test.len()).step_by(sites).collect())
                .collect(),
            _ => {
                let hist = train
                    .histogram(data.train.labels(), CLASSES)
                    .context("counting the training labels")?;
                proportional_split(data.test.labels(), &hist)
            }
        };
        Ok(Shares {
            partitioner,
            seed,
            train,
            test,
        })
    }

    /// The partitioner.
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let shares = Shares::new(&data, "dirichlet:0.5".parse()?, 2, 1)?;
    /// assert_eq!(shares.partitioner().to_string(), "dirichlet:0.5");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn partitioner(&self) -> &Partitioner {
        &self.partitioner
    }

    /// The partition's name in the flow's settings ([`label`]).
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let shares = Shares::new(&data, "iid".parse()?, 2, 1)?;
    /// assert_eq!(shares.label(), "iid --partition-seed 1");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn label(&self) -> String {
        label(&self.partitioner, self.seed)
    }

    /// The number of collaborators.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// assert_eq!(Shares::new(&data, "strided".parse()?, 3, 0)?.len(), 3);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.train.len()
    }

    /// Whether there are no collaborators (never, for shares [`Shares::new`] made).
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// assert!(!Shares::new(&data, "strided".parse()?, 3, 0)?.is_empty());
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
    }

    /// The training partition.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let shares = Shares::new(&data, "strided".parse()?, 2, 0)?;
    /// assert_eq!(shares.train().site(1)[..3], [1, 3, 5]);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn train(&self) -> &Partition {
        &self.train
    }

    /// Collaborator `site`'s test sample indices.
    ///
    /// # Panics
    /// If `site >= self.len()`.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let shares = Shares::new(&data, "strided".parse()?, 2, 0)?;
    /// assert_eq!(shares.test(0)[..3], [0, 2, 4]);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn test(&self, site: usize) -> &[usize] {
        &self.test[site]
    }

    /// Collaborator `site`'s training and test samples, out of `data` (the data the shares were
    /// made from).
    ///
    /// # Errors
    /// An index past the data (other data than the shares were made from) or an unknown site.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let shares = Shares::new(&data, "strided".parse()?, 2, 0)?;
    /// assert_eq!(shares.site_data(&data, 1)?, data.shard(1, 2)?);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn site_data(&self, data: &Mnist, site: usize) -> anyhow::Result<Mnist> {
        if site >= self.len() {
            bail!("no collaborator {site}: the shares are for {}", self.len());
        }
        Ok(Mnist {
            train: data.train.subset(self.train.site(site))?,
            test: data.test.subset(&self.test[site])?,
        })
    }

    /// Each collaborator's training labels, per class.
    ///
    /// # Errors
    /// Other data than the shares were made from.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let hist = Shares::new(&data, "shards:1".parse()?, 10, 3)?.histogram(&data)?;
    /// assert!((0..10).all(|site| hist.classes_present(site) == 1));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn histogram(&self, data: &Mnist) -> anyhow::Result<LabelHistogram> {
        self.train
            .histogram(data.train.labels(), CLASSES)
            .context("counting the training labels")
    }

    /// The per-collaborator label table printed before training: one row per collaborator (its
    /// name, its training samples per digit, their total) and its test samples, then a total
    /// row. The counts are [`LabelHistogram`]'s, with names instead of site numbers.
    ///
    /// # Errors
    /// Other data than the shares were made from, or fewer names than collaborators.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Shares;
    /// # use flspec_tch::datasets::mnist::{Dataset, Mnist};
    /// # let split = |n: usize| Dataset::new(vec![0; n * 784], (0..n).map(|i| (i % 10) as u8).collect());
    /// # let data = Mnist { train: split(100), test: split(20) };
    /// let shares = Shares::new(&data, "strided".parse()?, 2, 0)?;
    /// let table = shares.table(&data, &["Bengaluru".into(), "Portland".into()])?;
    /// assert!(table.starts_with("collaborator   0   1"), "{table}");
    /// assert_eq!(table.lines().count(), 1 + 2 + 1);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn table(&self, data: &Mnist, names: &[String]) -> anyhow::Result<String> {
        let hist = self.histogram(data)?;
        if names.len() < hist.sites() {
            bail!("{} names for {} collaborators", names.len(), hist.sites());
        }
        let rows: Vec<Vec<String>> = (0..hist.sites())
            .map(|s| {
                let counts = hist.counts(s);
                counts
                    .iter()
                    .map(usize::to_string)
                    .chain([
                        counts.iter().sum::<usize>().to_string(),
                        self.test[s].len().to_string(),
                    ])
                    .collect()
            })
            .collect();
        let totals: Vec<String> = (0..CLASSES + 2)
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].parse::<usize>().unwrap_or(0))
                    .sum::<usize>()
                    .to_string()
            })
            .collect();
        let header: Vec<String> = (0..CLASSES)
            .map(|c| c.to_string())
            .chain(["train".to_string(), "test".to_string()])
            .collect();
        let first = "collaborator";
        let nw = names[..hist.sites()]
            .iter()
            .map(String::len)
            .chain([first.len(), "total".len()])
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].len())
                    .chain([header[c].len(), totals[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let mut line = |name: &str, cells: &[String]| {
            let _ = write!(out, "{name:<nw$}");
            for (cell, w) in cells.iter().zip(&widths) {
                let _ = write!(out, "  {cell:>w$}");
            }
            out.push('\n');
        };
        line(first, &header);
        for (name, row) in names.iter().zip(&rows) {
            line(name, row);
        }
        line("total", &totals);
        Ok(out)
    }
}

/// Cuts each class's test samples (in file order) among the sites in proportion to the sites'
/// training counts of that class; a class no site trains on is split evenly.
fn proportional_split(test_labels: &[u8], hist: &LabelHistogram) -> Vec<Vec<usize>> {
    let sites = hist.sites();
    let mut out = vec![Vec::new(); sites];
    for class in 0..CLASSES {
        let idx: Vec<usize> = (0..test_labels.len())
            .filter(|&i| usize::from(test_labels[i]) == class)
            .collect();
        let weights: Vec<usize> = (0..sites)
            .map(|s| hist.counts(s).get(class).copied().unwrap_or(0))
            .collect();
        let (weights, total) = match weights.iter().sum::<usize>() {
            0 => (vec![1; sites], sites),
            total => (weights, total),
        };
        let mut start = 0;
        let mut acc = 0;
        for (site, w) in weights.iter().enumerate() {
            acc += w;
            // floor(cumsum · len / total): the last site's end is exactly len.
            let end = acc * idx.len() / total;
            out[site].extend_from_slice(&idx[start..end]);
            start = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use flspec_tch::datasets::mnist::Dataset;

    use super::*;

    /// `n_train` / `n_test` samples, label `i % 10`, pixels all `i % 256`.
    fn fake(n_train: usize, n_test: usize) -> Mnist {
        let split = |n: usize| {
            Dataset::new(
                (0..n).flat_map(|i| [i as u8; 784]).collect(),
                (0..n).map(|i| (i % 10) as u8).collect(),
            )
        };
        Mnist {
            train: split(n_train),
            test: split(n_test),
        }
    }

    #[test]
    fn strided_shares_are_the_seed_shards() {
        let data = fake(103, 31);
        let shares = Shares::new(&data, Partitioner::Strided, 3, 9).unwrap();
        for i in 0..3 {
            assert_eq!(
                shares.site_data(&data, i).unwrap(),
                data.shard(i, 3).unwrap()
            );
        }
    }

    #[test]
    fn proportional_test_shares_follow_the_training_labels() {
        let data = fake(1000, 200);
        let shares = Shares::new(&data, "shards:2".parse().unwrap(), 5, 3).unwrap();
        let hist = shares.histogram(&data).unwrap();
        let mut seen = vec![0; 200];
        for s in 0..5 {
            let site = shares.site_data(&data, s).unwrap();
            let test = site.test.class_counts();
            for (c, (n, trained)) in test.iter().zip(hist.counts(s)).enumerate() {
                // shards:2 over 5 sites: each class is one site's, test labels included.
                assert_eq!(*n > 0, *trained > 0, "site {s} class {c}");
            }
            for &i in shares.test(s) {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "every test sample once");
    }

    #[test]
    fn a_class_nobody_trains_on_is_split_evenly() {
        let data = fake(100, 40);
        let shares = Shares::new(&data, Partitioner::Iid, 2, 1).unwrap();
        let empty = proportional_split(data.test.labels(), &{
            // A histogram without class 0 anywhere: drop class 0 from the training labels.
            let labels: Vec<u8> = data.train.labels().iter().map(|&l| l.max(1)).collect();
            shares.train().histogram(&labels, CLASSES).unwrap()
        });
        let class0: Vec<usize> = empty
            .iter()
            .map(|s| s.iter().filter(|&&i| i % 10 == 0).count())
            .collect();
        assert_eq!(class0, [2, 2]);
    }

    #[test]
    fn a_site_without_training_samples_is_refused_before_training() {
        let data = fake(5, 5);
        let err = Shares::new(&data, Partitioner::Iid, 8, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`--partition iid --partition-seed 1`"),
            "{err}"
        );
        assert!(err.contains("without training samples"), "{err}");
        assert!(err.contains("at most 5 collaborators"), "{err}");
        let err = Shares::new(&data, "dirichlet:0.5/min=0".parse().unwrap(), 8, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`dirichlet:0.5/min=20`"), "{err}");
    }

    #[test]
    fn the_table_has_a_row_per_collaborator_and_the_totals() {
        let data = fake(100, 20);
        let shares = Shares::new(&data, Partitioner::Strided, 2, 0).unwrap();
        let names = ["Bengaluru".to_string(), "Portland".to_string()];
        let table = shares.table(&data, &names).unwrap();
        assert_eq!(
            table,
            "\
collaborator   0   1   2   3   4   5   6   7   8   9  train  test
Bengaluru     10   0  10   0  10   0  10   0  10   0     50    10
Portland       0  10   0  10   0  10   0  10   0  10     50    10
total         10  10  10  10  10  10  10  10  10  10    100    20
"
        );
    }
}
