//! The error type of the tch side of the toolkit (models, training, parameter vectors).

/// The error type of this crate's libtorch-backed parts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flat parameter vector of the wrong length.
    #[error("a flat parameter vector of this model has {expected} values, got {found}")]
    ParameterCount {
        /// The model's number of parameters.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// Training on no samples (the mean loss would divide by zero).
    #[error("cannot train on an empty dataset")]
    EmptyDataset,
    /// A batch size of 0.
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,
    /// A FedProx `mu` that is negative, infinite or NaN.
    #[error("FedProx's mu must be a finite number >= 0 (0 is plain FedAvg), got {0}")]
    ProximalMu(f64),
    /// Parameters given to a FedProx term that are not as many as the global model's.
    #[error(
        "the FedProx term got {found} parameter tensors, but its global model has {expected}; \
         pass the parameters of the model the snapshot was taken from"
    )]
    ProximalCount {
        /// The global model's number of tensors.
        expected: usize,
        /// The number given.
        found: usize,
    },
    /// A parameter given to a FedProx term whose shape is not the global model's.
    #[error(
        "the FedProx term got parameter {index} of shape {found:?}, but the global model's is \
         {expected:?}; pass the parameters in the model's order"
    )]
    ProximalShape {
        /// The parameter's position.
        index: usize,
        /// The global model's shape.
        expected: Vec<i64>,
        /// The shape given.
        found: Vec<i64>,
    },
    /// libtorch reported an error.
    #[error("libtorch error")]
    Torch(#[from] tch::TchError),
    /// A parameter that a layout (or a file read against it) lists, but the tensors lack.
    #[error(
        "parameter `{name}`{} is missing from {place}; it must hold the same tensors as the \
         layout (the model's parameters)",
        shape_note(.expected)
    )]
    MissingParameter {
        /// The parameter's name.
        name: String,
        /// The shape the layout expects, where it knows one.
        expected: Option<Vec<i64>>,
        /// Where it is missing: the variable store, the tensor list, or a file.
        place: String,
    },
    /// A parameter that the tensors have, but the layout does not list.
    #[error(
        "{place} has a parameter `{name}` (shape {found:?}) that the layout does not; it must \
         hold the same tensors as the layout (the model's parameters)"
    )]
    UnexpectedParameter {
        /// The parameter's name (for a tensor list: its position, `#N`).
        name: String,
        /// Its shape.
        found: Vec<i64>,
        /// Where it was found: the variable store, the tensor list, or a file.
        place: String,
    },
    /// A parameter whose shape is not the layout's.
    #[error(
        "parameter `{name}` has shape {found:?} in {place}, but the layout expects {expected:?}"
    )]
    ShapeMismatch {
        /// The parameter's name.
        name: String,
        /// The layout's shape.
        expected: Vec<i64>,
        /// The shape found.
        found: Vec<i64>,
        /// Where it was found: the variable store, the tensor list, or a file.
        place: String,
    },
    /// A parameter that is not `f32`.
    #[error(
        "parameter `{name}` in {place} is {kind}, but a flat parameter vector holds f32 values; \
         convert it to f32 first (`VarStore::float` for a model)"
    )]
    ParameterKind {
        /// The parameter's name.
        name: String,
        /// Its element type, as libtorch or the file names it.
        kind: String,
        /// Where it was found: the variable store, the tensor list, or a file.
        place: String,
    },
    /// A layout that lists a name twice.
    #[error("the layout lists parameter `{name}` twice; give each tensor one name")]
    DuplicateParameter {
        /// The repeated name.
        name: String,
    },
    /// A layout shape with a negative dimension, or too many values to count.
    #[error(
        "parameter `{name}` has shape {shape:?}, which has no valid number of values; \
         dimensions must be >= 0"
    )]
    InvalidShape {
        /// The parameter's name.
        name: String,
        /// The shape given.
        shape: Vec<i64>,
    },
    /// CUDA asked for, but libtorch sees no CUDA device.
    #[error(
        "device `{requested}` asked for, but {}; use `--device cpu` (or `auto`, which falls back \
         to the CPU), or build against a CUDA-enabled libtorch 2.13.0 (set LIBTORCH to its \
         folder) on a machine with an NVIDIA GPU and driver",
        cuda_reason(*.built_with_cuda)
    )]
    CudaUnavailable {
        /// The device asked for.
        requested: crate::device::DeviceChoice,
        /// Whether libtorch was built with CUDA (then no GPU or driver is visible).
        built_with_cuda: bool,
    },
    /// A CUDA device index beyond the devices libtorch sees.
    #[error(
        "device `{requested}` asked for, but libtorch sees only {count} CUDA device(s), \
         cuda:0 to cuda:{}; pick one of those (or `cuda`, the first)",
        .count.saturating_sub(1)
    )]
    CudaIndex {
        /// The device asked for.
        requested: crate::device::DeviceChoice,
        /// The number of CUDA devices.
        count: usize,
    },
    /// A safetensors file that could not be written.
    #[error(
        "cannot write the safetensors file `{}`; check that its folder exists and is writable",
        .path.display()
    )]
    ExportWrite {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O or serialisation error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file that could not be read as safetensors.
    #[error(
        "cannot read `{}` as a safetensors file; check the path, and that it was written as \
         safetensors (e.g. `safetensors.torch.save_file`, not `torch.save`)",
        .path.display()
    )]
    ExportRead {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O or format error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why CUDA is unavailable, for [`Error::CudaUnavailable`].
fn cuda_reason(built_with_cuda: bool) -> &'static str {
    if built_with_cuda {
        "libtorch sees no CUDA device (is the NVIDIA driver loaded, and the GPU visible: \
         CUDA_VISIBLE_DEVICES?)"
    } else {
        "this libtorch was built without CUDA (`scripts/setup-libtorch.sh` installs a CPU-only \
         one)"
    }
}

/// ` (shape [..])` for a known shape, nothing otherwise.
fn shape_note(shape: &Option<Vec<i64>>) -> String {
    shape
        .as_ref()
        .map(|s| format!(" (shape {s:?})"))
        .unwrap_or_default()
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
