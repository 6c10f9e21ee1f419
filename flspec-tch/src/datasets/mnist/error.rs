//! The loader's error type.

use std::io;
use std::path::PathBuf;

/// Why an MNIST folder, file or checksum list could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No mirror served a file with the pinned SHA-256.
    #[error("could not download `{name}`: {reasons}")]
    Download {
        /// The file.
        name: String,
        /// What each mirror answered.
        reasons: String,
    },
    /// The file could not be opened or read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Neither `NAME` nor `NAME.gz` is in the folder.
    #[error(
        "no `{name}` or `{name}.gz` in `{}`; the folder must hold MNIST's four IDX files \
         (torchvision's `MNIST/raw` layout)",
        dir.display()
    )]
    Missing {
        /// The folder searched.
        dir: PathBuf,
        /// The file's name without `.gz`.
        name: String,
    },
    /// The file starts with gzip's magic bytes but does not decompress (truncated or corrupt).
    #[error("`{}` is not a valid gzip file (truncated or corrupt)", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The IDX magic number is not the one expected for this kind of file.
    #[error(
        "`{}` has IDX magic number {found:#010x}, expected {expected:#010x} ({what}); \
         is it the right file?",
        path.display()
    )]
    Magic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What the expected magic number stands for.
        what: &'static str,
    },
    /// The file is shorter or longer than its IDX header says.
    #[error(
        "`{}` holds {found} bytes but its IDX header says {expected}; the file is truncated \
         or corrupt",
        path.display()
    )]
    Length {
        /// The file (its decompressed content).
        path: PathBuf,
        /// The length the header implies, header included.
        expected: u64,
        /// The actual length.
        found: u64,
    },
    /// The images are not 28x28.
    #[error("`{}` holds {rows}x{cols} images, expected 28x28", path.display())]
    Dimensions {
        /// The images file.
        path: PathBuf,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// A label is not a digit 0-9.
    #[error("`{}`: label {label} of sample {index} is not a digit 0-9", path.display())]
    Label {
        /// The labels file.
        path: PathBuf,
        /// The sample's index.
        index: usize,
        /// The label read.
        label: u8,
    },
    /// The images and labels files disagree on the number of samples.
    #[error("`{}` holds {images} images but `{}` holds {labels} labels", images_path.display(), labels_path.display())]
    Count {
        /// The images file.
        images_path: PathBuf,
        /// Its number of images.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Its number of labels.
        labels: usize,
    },
    /// A line of a `SHA256SUMS` list is not `<64 hex digits>  <file name>`.
    #[error("`{}` line {line}: {reason}", path.display())]
    ChecksumList {
        /// The list (or `<text>` when parsed from a string).
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A file is not in the checksum list.
    #[error("`{name}` is not listed in `{}`", list.display())]
    NotListed {
        /// The file's name.
        name: String,
        /// The list.
        list: PathBuf,
    },
    /// A file's SHA-256 differs from the listed one.
    #[error(
        "`{}` has SHA-256 {actual}, but the list says {expected}; the file is corrupt or not \
         the listed one: delete it and fetch it again",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The listed digest, in hex.
        expected: String,
        /// The file's digest, in hex.
        actual: String,
    },
    /// A shard index out of range.
    #[error(
        "there is no shard {index} of {count}: the index must be below the count, and the count at least 1"
    )]
    Shard {
        /// The requested index.
        index: usize,
        /// The number of shards.
        count: usize,
    },
    /// A sample index past the end of the data set.
    #[error("there is no sample {index} in a data set of {len}")]
    Index {
        /// The requested index.
        index: usize,
        /// The number of samples.
        len: usize,
    },
}

/// The loader's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
