//! Reading IDX files (MNIST's format), gzipped or not.
//!
//! An IDX file is a big-endian header `00 00 TYPE NDIM`, then `NDIM` big-endian `u32` sizes, then
//! the data. MNIST uses type `0x08` (unsigned byte): images are `0x00000803` (3 dimensions: count,
//! rows, columns), labels `0x00000801` (1 dimension: count).

use std::fs;
use std::io::Read;
use std::path::Path;

use super::error::{Error, Result};

/// The magic number of an IDX file of `u8` images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX file of `u8` labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Images read from an IDX file: `count` images of `rows` x `cols` bytes, row-major, one after
/// the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, 0 (background) to 255.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The number of images.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::IdxImages;
    /// let images = IdxImages { rows: 28, cols: 28, pixels: vec![0; 3 * 784] };
    /// assert_eq!(images.count(), 3);
    /// ```
    pub fn count(&self) -> usize {
        self.pixels.len() / (self.rows * self.cols).max(1)
    }
}

/// Reads a whole file, decompressing it when it starts with gzip's magic bytes `1f 8b`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Gzip`] when it is a damaged gzip file.
///
/// ```
/// use flspec_tch::datasets::mnist::{self, read_maybe_gzip};
/// let bytes = read_maybe_gzip(&mnist::bundled_dir().join("t10k-labels-idx1-ubyte.gz"))?;
/// assert_eq!(bytes[..4], [0, 0, 8, 1]); // the labels' IDX magic, after gunzip
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| Error::Gzip {
            path: path.to_owned(),
            source,
        })?;
    Ok(out)
}

/// Reads an IDX images file (`.gz` or not).
///
/// # Errors
/// See [`read_maybe_gzip`]; [`Error::Magic`] for another kind of file, [`Error::Length`] when the
/// data is shorter or longer than the header says.
///
/// ```
/// use flspec_tch::datasets::mnist::{self, read_images};
/// let images = read_images(&mnist::bundled_dir().join("t10k-images-idx3-ubyte.gz"))?;
/// assert_eq!((images.count(), images.rows, images.cols), (1_000, 28, 28));
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let bytes = read_maybe_gzip(path)?;
    let (dims, data) = parse(path, &bytes, IMAGES_MAGIC, "u8 images, 3 dimensions")?;
    let [_, rows, cols] = [dims[0], dims[1], dims[2]];
    Ok(IdxImages {
        rows,
        cols,
        pixels: data.to_vec(),
    })
}

/// Reads an IDX labels file (`.gz` or not). Labels are not range-checked here.
///
/// # Errors
/// As [`read_images`].
///
/// ```
/// use flspec_tch::datasets::mnist::{self, read_labels};
/// let labels = read_labels(&mnist::bundled_dir().join("t10k-labels-idx1-ubyte.gz"))?;
/// assert!(labels.len() == 1_000 && labels.iter().all(|&l| l < 10));
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gzip(path)?;
    let (_, data) = parse(path, &bytes, LABELS_MAGIC, "u8 labels, 1 dimension")?;
    Ok(data.to_vec())
}

/// Splits decompressed IDX bytes into dimensions and data, checking the magic number and length.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &'static str,
) -> Result<(Vec<usize>, &'a [u8])> {
    let ndim = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim;
    let too_short = |expected: u64| Error::Length {
        path: path.to_owned(),
        expected,
        found: bytes.len() as u64,
    };
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(|| too_short(header_len as u64))?;
    if found != magic {
        return Err(Error::Magic {
            path: path.to_owned(),
            found,
            expected: magic,
            what,
        });
    }
    let dims = (1..=ndim)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| too_short(header_len as u64))?;
    // Saturates: a header claiming more than u64::MAX bytes cannot match the file anyway.
    let expected = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .and_then(|data| data.checked_add(header_len as u64))
        .unwrap_or(u64::MAX);
    if bytes.len() as u64 != expected {
        return Err(too_short(expected));
    }
    Ok((dims, &bytes[header_len..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    /// An IDX images file of `count` 2x3 images whose pixels are their index.
    pub(crate) fn images_bytes(count: u32) -> Vec<u8> {
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [count, 2, 3] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..count * 6).map(|i| i as u8));
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzipped_images() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let gz = dir.path().join("gz");
        fs::write(&plain, images_bytes(4)).unwrap();
        fs::write(&gz, gzip(&images_bytes(4))).unwrap();
        for path in [plain, gz] {
            let images = read_images(&path).unwrap();
            assert_eq!((images.rows, images.cols, images.count()), (2, 3, 4));
            assert_eq!(images.pixels, (0..24).collect::<Vec<u8>>());
        }
    }

    #[test]
    fn wrong_magic_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels-as-images");
        fs::write(&path, images_bytes(2)).unwrap();
        let err = read_labels(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::Magic {
                found: IMAGES_MAGIC,
                expected: LABELS_MAGIC,
                ..
            }
        ));
        assert!(err.to_string().contains("labels-as-images"), "{err}");
    }

    #[test]
    fn truncated_and_overlong_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images");
        let good = images_bytes(3);
        for bad in [
            &good[..good.len() - 1],
            &good[..10],
            &good[..2],
            &[good.clone(), vec![0]].concat(),
        ] {
            fs::write(&path, bad).unwrap();
            let err = read_images(&path).unwrap_err();
            assert!(matches!(err, Error::Length { .. }), "{err:?}");
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }

    #[test]
    fn truncated_gzip_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.gz");
        let gz = gzip(&images_bytes(50));
        fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, Error::Gzip { .. }), "{err:?}");
        assert!(err.to_string().contains("images.gz"), "{err}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = read_images(Path::new("/nonexistent/mnist/file")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/mnist/file"));
    }
}
