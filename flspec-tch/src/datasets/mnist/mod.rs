//! MNIST in its own IDX format: loading a folder, sharding it between collaborators,
//! normalising it, and verifying files against a `SHA256SUMS` list. Needs no libtorch.
//!
//! The folder holds the four files of the original distribution (torchvision's `MNIST/raw`
//! layout), each gzipped or not: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`. The repository bundles a 5,000-sample
//! subset in `data/mnist-5k/` ([`bundled_dir`]).
//!
//! ```no_run
//! use flspec_tch::datasets::mnist::{self, Mnist};
//!
//! let dir = mnist::bundled_dir();
//! mnist::verify_dir(&dir)?; // against dir/SHA256SUMS
//! let data = Mnist::load(&dir)?;
//! let bengaluru = data.shard(0, 2)?; // samples 0, 2, 4, ... of train and of test
//! assert_eq!(bengaluru.train.len(), 2_000);
//! let inputs: Vec<f32> = bengaluru.train.normalized(); // (x / 255 - 0.1307) / 0.3081
//! # Ok::<(), mnist::Error>(())
//! ```

mod checksum;
pub mod download;
mod error;
mod idx;

use std::path::{Path, PathBuf};

pub use checksum::{SHA256SUMS, Sha256Sums, sha256_file, to_hex, verify_dir};
pub use error::{Error, Result};
pub use idx::{IMAGES_MAGIC, IdxImages, LABELS_MAGIC, read_images, read_labels, read_maybe_gzip};

/// The training images file's name, without `.gz`.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// The training labels file's name, without `.gz`.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// The test images file's name, without `.gz`.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// The test labels file's name, without `.gz`.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Rows of an MNIST image.
pub const ROWS: usize = 28;
/// Columns of an MNIST image.
pub const COLS: usize = 28;
/// Number of classes (the digits 0-9).
pub const CLASSES: usize = 10;
/// The mean used to normalise pixels scaled to 0..=1 (torchvision's MNIST example).
pub const MEAN: f32 = 0.1307;
/// The standard deviation used to normalise pixels scaled to 0..=1.
pub const STD: f32 = 0.3081;

/// The bundled 5,000-sample subset (4,000 train, 1,000 test), `data/mnist-5k/` in a checkout of
/// the repository (beside this crate's folder).
///
/// ```
/// use flspec_tch::datasets::mnist::bundled_dir;
/// assert!(bundled_dir().ends_with("mnist-5k"));
/// ```
pub fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("mnist-5k")
}

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set (`train-*`).
    Train,
    /// The test set (`t10k-*`).
    Test,
}

impl Split {
    /// The images and labels file names, without `.gz`.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Split;
    /// assert_eq!(Split::Test.file_names(), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"));
    /// ```
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => (TRAIN_IMAGES, TRAIN_LABELS),
            Split::Test => (TEST_IMAGES, TEST_LABELS),
        }
    }
}

/// The path of `name` or `name.gz` in `dir` (the uncompressed file first, as torchvision).
///
/// # Errors
/// [`Error::Missing`] when neither exists.
///
/// ```
/// use flspec_tch::datasets::mnist::{self, find_file};
/// let dir = mnist::bundled_dir();
/// assert!(find_file(&dir, mnist::TRAIN_LABELS)?.ends_with("train-labels-idx1-ubyte.gz"));
/// assert!(find_file(&dir, "no-such-file").is_err());
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Missing {
            dir: dir.to_owned(),
            name: name.to_owned(),
        })
}

/// One split (or a shard of it): 28x28 images with their labels, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// `len * 784` pixels, 0 to 255, row-major, image after image.
    pixels: Vec<u8>,
    /// `len` labels, each 0-9.
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from raw 28x28 pixels and labels.
    ///
    /// # Panics
    /// When `pixels.len() != labels.len() * 784` or a label is above 9: loading files checks
    /// both and returns an error instead.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// let data = Dataset::new(vec![0; 2 * 784], vec![3, 1]);
    /// assert_eq!(data.len(), 2);
    /// ```
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * ROWS * COLS,
            "pixels and labels disagree"
        );
        assert!(
            labels.iter().all(|&l| (l as usize) < CLASSES),
            "a label is not a digit 0-9"
        );
        Self { pixels, labels }
    }

    /// Reads one split from `dir`, `.gz` or not, checking magic numbers, lengths, 28x28
    /// images, labels 0-9, and equal counts.
    ///
    /// # Errors
    /// Any [`Error`] but the checksum ones, naming the offending file.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::{self, Dataset, Split};
    /// let test = Dataset::load(&mnist::bundled_dir(), Split::Test)?;
    /// assert_eq!(test.len(), 1_000);
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        let (images_name, labels_name) = split.file_names();
        let images_path = find_file(dir, images_name)?;
        let labels_path = find_file(dir, labels_name)?;
        let images = read_images(&images_path)?;
        if (images.rows, images.cols) != (ROWS, COLS) {
            return Err(Error::Dimensions {
                path: images_path,
                rows: images.rows,
                cols: images.cols,
            });
        }
        let labels = read_labels(&labels_path)?;
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= CLASSES)
        {
            return Err(Error::Label {
                path: labels_path,
                index,
                label,
            });
        }
        if images.count() != labels.len() {
            return Err(Error::Count {
                images_path,
                images: images.count(),
                labels_path,
                labels: labels.len(),
            });
        }
        Ok(Self {
            pixels: images.pixels,
            labels,
        })
    }

    /// The number of samples.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// assert_eq!(Dataset::new(vec![0; 784], vec![5]).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// assert!(Dataset::new(vec![], vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels, 0 to 255: `len() * 784` bytes, image after image.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// assert_eq!(Dataset::new(vec![9; 784], vec![5]).pixels().len(), 784);
    /// ```
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels, 0 to 9.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// assert_eq!(Dataset::new(vec![0; 784], vec![5]).labels(), &[5]);
    /// ```
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The 784 pixels of sample `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// let mut pixels = vec![0; 2 * 784];
    /// pixels[784] = 255;
    /// assert_eq!(Dataset::new(pixels, vec![0, 1]).image(1)[0], 255);
    /// ```
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * ROWS * COLS..(i + 1) * ROWS * COLS]
    }

    /// Collaborator `index` of `count`'s share: samples `index`, `index + count`, ... (Python's
    /// `data[index::count]`, as the seed tutorial shards).
    ///
    /// # Errors
    /// [`Error::Shard`] unless `index < count`.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// let data = Dataset::new(vec![0; 5 * 784], vec![0, 1, 2, 3, 4]);
    /// assert_eq!(data.shard(1, 2)?.labels(), &[1, 3]);
    /// assert!(data.shard(2, 2).is_err());
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn shard(&self, index: usize, count: usize) -> Result<Self> {
        if index >= count {
            return Err(Error::Shard { index, count });
        }
        let picked = (index..self.len()).step_by(count);
        Ok(Self {
            pixels: picked
                .clone()
                .flat_map(|i| self.image(i))
                .copied()
                .collect(),
            labels: picked.map(|i| self.labels[i]).collect(),
        })
    }

    /// The samples at `indices`, in that order (a site's share from a
    /// [`flspec::fl::partition`] of the labels, for example).
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    ///
    /// let data = Dataset::new(vec![0; 3 * 784], vec![7, 8, 9]);
    /// let picked = data.subset(&[2, 0])?;
    /// assert_eq!(picked.labels(), &[9, 7]);
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Index`] for an index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&index) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Index {
                index,
                len: self.len(),
            });
        }
        Ok(Self {
            pixels: indices
                .iter()
                .flat_map(|&i| self.image(i))
                .copied()
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        })
    }

    /// The pixels as the model reads them: scaled to 0..=1, then `(x - MEAN) / STD`, in `f32`
    /// (torchvision's `ToTensor()` then `Normalize((0.1307,), (0.3081,))`, same rounding).
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::{Dataset, normalize};
    /// let data = Dataset::new(vec![255; 784], vec![0]);
    /// assert_eq!(data.normalized()[0], normalize(255));
    /// ```
    pub fn normalized(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| normalize(p)).collect()
    }

    /// How many samples of each digit.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Dataset;
    /// let counts = Dataset::new(vec![0; 3 * 784], vec![7, 7, 2]).class_counts();
    /// assert_eq!((counts[7], counts[2], counts[0]), (2, 1, 0));
    /// ```
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// One pixel as the model reads it: `(p / 255 - MEAN) / STD`, in `f32`.
///
/// ```
/// use flspec_tch::datasets::mnist::normalize;
/// assert!((normalize(0) + 0.1307 / 0.3081).abs() < 1e-6);
/// ```
pub fn normalize(pixel: u8) -> f32 {
    (f32::from(pixel) / 255.0 - MEAN) / STD
}

/// MNIST's training and test sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    /// The training set.
    pub train: Dataset,
    /// The test set.
    pub test: Dataset,
}

impl Mnist {
    /// Reads both splits from a folder (see the module documentation). Does not verify
    /// checksums: call [`verify_dir`] first where the folder has a `SHA256SUMS`.
    ///
    /// # Errors
    /// See [`Dataset::load`].
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::{self, Mnist};
    /// let data = Mnist::load(&mnist::bundled_dir())?;
    /// assert_eq!((data.train.len(), data.test.len()), (4_000, 1_000));
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self {
            train: Dataset::load(dir, Split::Train)?,
            test: Dataset::load(dir, Split::Test)?,
        })
    }

    /// Verifies the bundled subset against its `SHA256SUMS`, then loads it.
    ///
    /// # Errors
    /// See [`verify_dir`] and [`Dataset::load`].
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Mnist;
    /// assert_eq!(Mnist::load_bundled()?.train.len(), 4_000);
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn load_bundled() -> Result<Self> {
        let dir = bundled_dir();
        verify_dir(&dir)?;
        Self::load(&dir)
    }

    /// Collaborator `index` of `count`'s share of both splits (see [`Dataset::shard`]).
    ///
    /// # Errors
    /// [`Error::Shard`] unless `index < count`.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Mnist;
    /// let portland = Mnist::load_bundled()?.shard(1, 2)?;
    /// assert_eq!((portland.train.len(), portland.test.len()), (2_000, 500));
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn shard(&self, index: usize, count: usize) -> Result<Self> {
        Ok(Self {
            train: self.train.shard(index, count)?,
            test: self.test.shard(index, count)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::fs;
    use std::io::Write;

    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A folder with `n_train` / `n_test` samples; image `i`'s pixels are all `i`, its label `i % 10`.
    fn fake_folder(n_train: u32, n_test: u32, gz: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (n, images, labels) in [
            (n_train, TRAIN_IMAGES, TRAIN_LABELS),
            (n_test, TEST_IMAGES, TEST_LABELS),
        ] {
            let px: Vec<u8> = (0..n).flat_map(|i| [i as u8; ROWS * COLS]).collect();
            let lb: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            for (name, bytes) in [
                (
                    images,
                    idx(IMAGES_MAGIC, &[n, ROWS as u32, COLS as u32], &px),
                ),
                (labels, idx(LABELS_MAGIC, &[n], &lb)),
            ] {
                if gz {
                    fs::write(dir.path().join(format!("{name}.gz")), gzip(&bytes)).unwrap();
                } else {
                    fs::write(dir.path().join(name), bytes).unwrap();
                }
            }
        }
        dir
    }

    #[test]
    fn loads_plain_and_gzipped_folders() {
        for gz in [false, true] {
            let dir = fake_folder(7, 3, gz);
            let m = Mnist::load(dir.path()).unwrap();
            assert_eq!((m.train.len(), m.test.len()), (7, 3));
            assert_eq!(m.train.image(5), &[5u8; 784][..]);
            assert_eq!(m.test.labels(), &[0, 1, 2]);
        }
    }

    #[test]
    fn shards_take_every_nth_sample() {
        let m = Mnist::load(fake_folder(7, 3, false).path()).unwrap();
        let s1 = m.shard(1, 2).unwrap();
        assert_eq!(s1.train.labels(), &[1, 3, 5]);
        assert_eq!(s1.train.image(2), &[5u8; 784][..]);
        assert_eq!(s1.test.labels(), &[1]);
        assert_eq!(m.shard(0, 2).unwrap().train.labels(), &[0, 2, 4, 6]);
        assert_eq!(m.shard(0, 1).unwrap(), m);
        assert!(matches!(
            m.shard(2, 2),
            Err(Error::Shard { index: 2, count: 2 })
        ));
        assert!(matches!(m.shard(0, 0), Err(Error::Shard { .. })));
    }

    #[test]
    fn normalisation_matches_torchvision() {
        assert_eq!(normalize(0), -0.1307 / 0.3081);
        assert!((normalize(255) - (1.0 - 0.1307) / 0.3081).abs() < 1e-6);
    }

    #[test]
    fn missing_file_is_named() {
        let dir = fake_folder(2, 2, true);
        fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let err = Mnist::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Missing { .. }));
        assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
    }

    #[test]
    fn truncated_images_file_is_named() {
        let dir = fake_folder(4, 2, false);
        let path = dir.path().join(TRAIN_IMAGES);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let err = Mnist::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Length { .. }), "{err:?}");
        assert!(err.to_string().contains(TRAIN_IMAGES), "{err}");
    }

    #[test]
    fn inconsistent_files_are_rejected() {
        let dir = fake_folder(4, 2, false);
        fs::write(
            dir.path().join(TRAIN_LABELS),
            idx(LABELS_MAGIC, &[3], &[0, 1, 2]),
        )
        .unwrap();
        assert!(matches!(
            Mnist::load(dir.path()),
            Err(Error::Count {
                images: 4,
                labels: 3,
                ..
            })
        ));

        fs::write(
            dir.path().join(TRAIN_LABELS),
            idx(LABELS_MAGIC, &[4], &[0, 1, 10, 2]),
        )
        .unwrap();
        assert!(matches!(
            Mnist::load(dir.path()),
            Err(Error::Label {
                index: 2,
                label: 10,
                ..
            })
        ));

        fs::write(
            dir.path().join(TRAIN_IMAGES),
            idx(IMAGES_MAGIC, &[1, 2, 2], &[0; 4]),
        )
        .unwrap();
        assert!(matches!(
            Mnist::load(dir.path()),
            Err(Error::Dimensions { rows: 2, .. })
        ));

        fs::write(
            dir.path().join(TRAIN_IMAGES),
            idx(LABELS_MAGIC, &[4], &[0; 4]),
        )
        .unwrap();
        assert!(matches!(Mnist::load(dir.path()), Err(Error::Magic { .. })));
    }

    #[test]
    fn bundled_subset_verifies_and_loads() {
        let m = Mnist::load_bundled().unwrap();
        assert_eq!((m.train.len(), m.test.len()), (4_000, 1_000));
        assert_eq!(m.train.class_counts(), [400; 10]);
        assert_eq!(m.test.class_counts(), [100; 10]);
        let s = m.shard(1, 2).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (2_000, 500));
    }

    #[test]
    fn corrupted_copy_of_bundled_file_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(bundled_dir()).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        verify_dir(dir.path()).unwrap();
        let path = dir.path().join("t10k-labels-idx1-ubyte.gz");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Checksum { .. }), "{err:?}");
        assert!(
            err.to_string().contains("t10k-labels-idx1-ubyte.gz"),
            "{err}"
        );
    }
}
