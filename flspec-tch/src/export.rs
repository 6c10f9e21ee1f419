//! Saving a model's parameters as [safetensors](https://github.com/huggingface/safetensors), the
//! format PyTorch, Hugging Face and most other tools read, and loading them back.
//!
//! A file holds one `F32` tensor per [`Layout`] slot, under the slot's name: for
//! [`Net`] these are exactly the seed's `Net().state_dict()` keys (`conv1.weight`, `conv1.bias`,
//! ..., `fc2.bias`), so PyTorch loads the final model of a flow with
//!
//! ```python
//! from safetensors.torch import load_file
//! model = Net()                                   # the seed tutorial's class
//! model.load_state_dict(load_file("model.safetensors"))
//! ```
//!
//! The header's metadata is `{"format": "pt"}`, as Hugging Face tools expect. Loading checks
//! the file against the layout: every tensor present, none extra, each `F32` of the layout's
//! shape; an error names the tensor (and both shapes).
//!
//! ```
//! use flspec_tch::export;
//! use flspec_tch::models::mnist_cnn::Net;
//!
//! # let dir = tempfile::tempdir()?;
//! # let model_path = dir.path().join("model.safetensors");
//! # let global_path = dir.path().join("global.safetensors");
//! let net = Net::new(42)?;
//! export::save_net(&net, &model_path)?;
//!
//! let mut other = Net::new(7)?;
//! export::load_net(&mut other, &model_path)?;
//! assert_eq!(other.to_flat()?, net.to_flat()?);
//!
//! // A flat global model (as an aggregator holds it), without building a `Net`:
//! let global: Vec<f32> = net.to_flat()?;
//! export::save_flat(Net::layout(), &global, &global_path)?;
//! assert_eq!(export::load_flat(Net::layout(), &global_path)?, global);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Files are written to a temporary file next to the target and renamed over it, so a reader
//! never sees half a model. Values are stored little-endian, bit for bit.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::nn::VarStore;

use crate::error::{Error, Result};
use crate::models::mnist_cnn::Net;
use crate::params::Layout;

/// Saves `net`'s parameters to `path` under the seed's `state_dict()` names.
///
/// # Errors
/// [`Error::ExportWrite`] if the file cannot be written; [`Error::Torch`].
pub fn save_net(net: &Net, path: impl AsRef<Path>) -> Result<()> {
    save_flat(Net::layout(), &net.to_flat()?, path)
}

/// Overwrites `net`'s parameters with those saved in `path` (by [`save_net`], or by PyTorch's
/// `safetensors.torch.save_file(Net().state_dict(), path)`).
///
/// # Errors
/// As [`load_flat`]; [`Error::Torch`].
pub fn load_net(net: &mut Net, path: impl AsRef<Path>) -> Result<()> {
    net.set_flat(&load_flat(Net::layout(), path)?)
}

/// Saves the variables of `vs`, laid out by `layout` (names and shapes checked), to `path`.
///
/// # Errors
/// As [`Layout::to_vec`] and [`save_flat`].
pub fn save_var_store(layout: &Layout, vs: &VarStore, path: impl AsRef<Path>) -> Result<()> {
    save_flat(layout, &layout.to_vec(vs)?, path)
}

/// Overwrites the variables of `vs` with those saved in `path`; nothing is written unless the
/// whole file matches `layout` and `vs` does too.
///
/// # Errors
/// As [`load_flat`] and [`Layout::load_from`].
pub fn load_var_store(layout: &Layout, vs: &VarStore, path: impl AsRef<Path>) -> Result<()> {
    let flat = load_flat(layout, path)?;
    layout.load_from(vs, &flat)
}

/// Saves a flat parameter vector, laid out by `layout`, as one `F32` tensor per slot.
///
/// # Errors
/// [`Error::ParameterCount`] unless `flat.len() == layout.len()`; [`Error::ExportWrite`] if
/// the file cannot be written.
pub fn save_flat(layout: &Layout, flat: &[f32], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if flat.len() != layout.len() {
        return Err(Error::ParameterCount {
            expected: layout.len(),
            found: flat.len(),
        });
    }
    let views = layout.slots().iter().map(|slot| {
        let view = F32View {
            values: &flat[slot.range()],
            // Non-negative: `Layout::new` checked every dimension.
            shape: slot.shape().iter().map(|&d| d as usize).collect(),
        };
        (slot.name(), view)
    });
    let metadata = Some(HashMap::from([("format".to_owned(), "pt".to_owned())]));
    let tmp = temporary_sibling(path);
    let written = safetensors::tensor::serialize_to_file(views, &metadata, &tmp)
        .map_err(|source| Error::ExportWrite {
            path: path.to_owned(),
            source: Box::new(source),
        })
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|source| Error::ExportWrite {
                path: path.to_owned(),
                source: Box::new(source),
            })
        });
    if written.is_err() {
        // Best effort: the temporary file may not exist.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads a safetensors file as a flat parameter vector laid out by `layout`.
///
/// # Errors
/// [`Error::ExportRead`] if the file cannot be read or is not safetensors;
/// [`Error::MissingParameter`] or [`Error::UnexpectedParameter`] for a tensor the file lacks or
/// has beyond the layout's; [`Error::ParameterKind`] for a tensor that is not `F32`;
/// [`Error::ShapeMismatch`]. Each names the tensor and the file.
pub fn load_flat(layout: &Layout, path: impl AsRef<Path>) -> Result<Vec<f32>> {
    let path = path.as_ref();
    let read_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::ExportRead {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| read_error(Box::new(e)))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| read_error(Box::new(e)))?;
    let place = format!("file `{}`", path.display());
    let mut flat = vec![0f32; layout.len()];
    for slot in layout.slots() {
        let view = file
            .tensor(slot.name())
            .map_err(|_| Error::MissingParameter {
                name: slot.name().to_owned(),
                expected: Some(slot.shape().to_vec()),
                place: place.clone(),
            })?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::ParameterKind {
                name: slot.name().to_owned(),
                kind: format!("{:?}", view.dtype()),
                place,
            });
        }
        let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if found != slot.shape() {
            return Err(Error::ShapeMismatch {
                name: slot.name().to_owned(),
                expected: slot.shape().to_vec(),
                found,
                place,
            });
        }
        // safetensors checked that the data is exactly numel * 4 bytes.
        for (value, bytes) in flat[slot.range()]
            .iter_mut()
            .zip(view.data().chunks_exact(4))
        {
            *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
    }
    let extra: BTreeSet<&String> = file
        .names()
        .into_iter()
        .filter(|name| layout.slot(name).is_none())
        .collect();
    if let Some(name) = extra.into_iter().next() {
        let found = file
            .tensor(name)
            .map(|v| v.shape().iter().map(|&d| d as i64).collect())
            .unwrap_or_default();
        return Err(Error::UnexpectedParameter {
            name: name.clone(),
            found,
            place,
        });
    }
    Ok(flat)
}

/// A slot's values as a safetensors `F32` tensor.
struct F32View<'a> {
    values: &'a [f32],
    shape: Vec<usize>,
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // One transient buffer per tensor, little-endian as the format requires.
        Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        size_of_val(self.values)
    }
}

/// `dir/.name.tmp-PID`, next to `path` (so that the rename stays on one file system).
fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
