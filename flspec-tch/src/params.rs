//! A model's parameters as one flat `f32` vector, the form `flspec::fl::aggregate` averages and
//! secure aggregation masks: a [`Layout`] fixes which tensors go where (names in a fixed order,
//! with shapes and offsets) and copies between a [`tch::nn::VarStore`] (or a list of tensors in
//! layout order) and a `[f32]`, checking names and shapes.
//!
//! ```
//! use flspec_tch::params::Layout;
//! use tch::{Device, nn};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let root = vs.root();
//! let _w = root.sub("fc").zeros("weight", &[2, 3]);
//! let _b = root.sub("fc").ones("bias", &[2]);
//!
//! // Names sorted (`fc.bias`, then `fc.weight`), or in an order you give (`Layout::from_var_store_in_order`).
//! let layout = Layout::from_var_store(&vs)?;
//! assert_eq!(layout.len(), 8);
//! let mut flat = layout.to_vec(&vs)?;
//! assert_eq!(flat, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
//!
//! flat[2] = 0.5; // fc.weight[0][0]
//! layout.load_from(&vs, &flat)?;
//! assert_eq!(layout.to_vec(&vs)?, flat);
//!
//! // A vector of the wrong length is refused, with both lengths.
//! let err = layout.load_from(&vs, &flat[1..]).unwrap_err();
//! assert_eq!(err.to_string(), "a flat parameter vector of this model has 8 values, got 7");
//! # Ok::<(), flspec_tch::Error>(())
//! ```
//!
//! # Copies and allocations
//! - [`Layout::copy_to`] allocates nothing and copies each value once: for each tensor, one
//!   `memcpy` from its storage straight into its slice of the output (libtorch's `at_copy_data`,
//!   through [`Tensor::f_copy_data`]). A tensor that is not contiguous, or not on the CPU, is first
//!   made so by libtorch (one temporary: a device-to-host copy cannot be avoided).
//!   [`Layout::to_vec`] adds the one output allocation of [`Layout::len`] values.
//! - [`Layout::load_from`] allocates no buffer of values: each tensor's slice of the input is
//!   wrapped, without a copy, in a borrowed CPU tensor (`from_blob`), and written with one
//!   `copy_` under [`tch::no_grad`] (which is also the host-to-device copy for a model on a GPU).
//! - The `VarStore` forms look the variables up by name, which costs one small map of
//!   [`Tensor::shallow_clone`]s (`VarStore::variables`, no values copied); the `*_tensors` forms,
//!   for tensors already held in layout order (as [`crate::models::mnist_cnn::Net`] holds them),
//!   skip that.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Where the tensors checked against a layout came from (for error messages).
const VAR_STORE: &str = "the variable store";
/// The same, for tensors given as a list in layout order.
const TENSOR_LIST: &str = "the tensor list";

/// One tensor's place in a flat vector: its name, shape, and range of values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    name: String,
    shape: Vec<i64>,
    offset: usize,
    numel: usize,
}

impl Slot {
    /// The tensor's name (as in a `VarStore` or PyTorch's `state_dict()`, e.g. `conv1.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// The index of its first value in the flat vector.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Its number of values (the product of its shape).
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// Its values' range in the flat vector: `offset..offset + numel`.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.numel
    }
}

/// The layout of a flat parameter vector: named tensors of fixed shapes, one after the other,
/// each flattened row-major. See the [module docs](self) for an example and what each operation
/// copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    slots: Vec<Slot>,
    index: HashMap<String, usize>,
    len: usize,
}

impl Layout {
    /// A layout of the given `(name, shape)` pairs, in this order.
    ///
    /// ```
    /// use flspec_tch::params::Layout;
    ///
    /// let layout = Layout::new([("fc.weight", vec![2, 3]), ("fc.bias", vec![2])])?;
    /// assert_eq!(layout.len(), 8);
    /// assert_eq!(layout.slot("fc.bias").map(|s| s.range()), Some(6..8));
    /// # Ok::<(), flspec_tch::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::DuplicateParameter`] for a name given twice; [`Error::InvalidShape`] for a
    /// negative dimension.
    pub fn new<N, S>(specs: impl IntoIterator<Item = (N, S)>) -> Result<Self>
    where
        N: Into<String>,
        S: Into<Vec<i64>>,
    {
        let mut slots = Vec::new();
        let mut index = HashMap::new();
        let mut len = 0usize;
        for (name, shape) in specs {
            let (name, shape) = (name.into(), shape.into());
            let numel = numel_of(&name, &shape)?;
            if index.insert(name.clone(), slots.len()).is_some() {
                return Err(Error::DuplicateParameter { name });
            }
            slots.push(Slot {
                name,
                shape,
                offset: len,
                numel,
            });
            len += numel;
        }
        Ok(Self { slots, index, len })
    }

    /// The layout of all variables of `vs`, names sorted (byte order: `a.bias` before
    /// `a.weight`), with their current shapes.
    ///
    /// # Errors
    /// [`Error::ParameterKind`] for a variable that is not `f32` (a flat vector holds `f32`s:
    /// convert the store with `VarStore::float`).
    pub fn from_var_store(vs: &VarStore) -> Result<Self> {
        let variables = vs.variables();
        let mut names: Vec<&String> = variables.keys().collect();
        names.sort();
        Self::new_checked(names.into_iter().map(|name| (name, &variables[name])))
    }

    /// The layout of the variables of `vs` in the order of `names` (e.g. a PyTorch model's
    /// `state_dict()` order), which must name each variable exactly once.
    ///
    /// # Errors
    /// [`Error::MissingParameter`] for a name that `vs` lacks; [`Error::UnexpectedParameter`]
    /// for a variable of `vs` that `names` does not list; [`Error::DuplicateParameter`];
    /// [`Error::ParameterKind`] as [`Layout::from_var_store`].
    pub fn from_var_store_in_order<S: AsRef<str>>(vs: &VarStore, names: &[S]) -> Result<Self> {
        let variables = vs.variables();
        let mut tensors = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let Some(tensor) = variables.get(name) else {
                return Err(Error::MissingParameter {
                    name: name.to_owned(),
                    expected: None,
                    place: VAR_STORE.to_owned(),
                });
            };
            tensors.push((name, tensor));
        }
        let layout = Self::new_checked(tensors)?;
        layout.check_no_extra(variables.iter(), VAR_STORE)?;
        Ok(layout)
    }

    /// A layout of named `f32` tensors, with their current shapes.
    fn new_checked<'a, N: AsRef<str>>(
        tensors: impl IntoIterator<Item = (N, &'a Tensor)>,
    ) -> Result<Self> {
        let mut specs = Vec::new();
        for (name, tensor) in tensors {
            check_kind(name.as_ref(), tensor, VAR_STORE)?;
            specs.push((name.as_ref().to_owned(), tensor.size()));
        }
        Self::new(specs)
    }

    /// The number of values in a flat vector of this layout.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the flat vector is empty (no tensors, or only empty ones).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tensors, in the flat vector's order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The tensor called `name`, if the layout has one.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.index.get(name).map(|&i| &self.slots[i])
    }

    /// The tensors' names, in the flat vector's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(Slot::name)
    }

    /// Checks that `vs` has exactly this layout's variables, with the same shapes, as `f32`.
    ///
    /// # Errors
    /// [`Error::MissingParameter`], [`Error::UnexpectedParameter`], [`Error::ShapeMismatch`],
    /// [`Error::ParameterKind`], each naming the variable (and both shapes where there are two).
    pub fn check(&self, vs: &VarStore) -> Result<()> {
        self.ordered(vs).map(drop)
    }

    /// All values of `vs`'s variables as one new vector of [`Layout::len`] values.
    ///
    /// # Errors
    /// As [`Layout::check`]; [`Error::Torch`] if libtorch fails.
    pub fn to_vec(&self, vs: &VarStore) -> Result<Vec<f32>> {
        self.tensors_to_vec(&self.ordered(vs)?)
    }

    /// Copies all values of `vs`'s variables into `out`, which must have [`Layout::len`] values.
    ///
    /// # Errors
    /// [`Error::ParameterCount`] for an `out` of another length; as [`Layout::to_vec`].
    pub fn copy_to(&self, vs: &VarStore, out: &mut [f32]) -> Result<()> {
        self.copy_tensors_to(&self.ordered(vs)?, out)
    }

    /// Overwrites `vs`'s variables with the values of `flat`, laid out as [`Layout::to_vec`]'s.
    /// Nothing is written unless the lengths, names and shapes all match.
    ///
    /// # Errors
    /// [`Error::ParameterCount`] for a `flat` of another length; as [`Layout::check`];
    /// [`Error::Torch`] if libtorch fails.
    pub fn load_from(&self, vs: &VarStore, flat: &[f32]) -> Result<()> {
        self.check_len(flat.len())?;
        self.load_tensors_from(&mut self.ordered(vs)?, flat)
    }

    /// As [`Layout::to_vec`], for tensors given in layout order (shapes and kinds checked;
    /// names cannot be).
    ///
    /// # Errors
    /// [`Error::MissingParameter`] or [`Error::UnexpectedParameter`] for a list of another
    /// length; [`Error::ShapeMismatch`]; [`Error::ParameterKind`]; [`Error::Torch`].
    pub fn tensors_to_vec(&self, tensors: &[Tensor]) -> Result<Vec<f32>> {
        let mut flat = vec![0f32; self.len];
        self.copy_tensors_to(tensors, &mut flat)?;
        Ok(flat)
    }

    /// As [`Layout::copy_to`], for tensors given in layout order.
    ///
    /// # Errors
    /// [`Error::ParameterCount`]; as [`Layout::tensors_to_vec`].
    pub fn copy_tensors_to(&self, tensors: &[Tensor], out: &mut [f32]) -> Result<()> {
        self.check_len(out.len())?;
        self.check_list(tensors)?;
        for (slot, tensor) in self.slots.iter().zip(tensors) {
            // One memcpy from the tensor's storage into the slice (see the module docs).
            tensor.f_copy_data(&mut out[slot.range()], slot.numel)?;
        }
        Ok(())
    }

    /// As [`Layout::load_from`], for tensors given in layout order.
    ///
    /// # Errors
    /// [`Error::ParameterCount`]; as [`Layout::tensors_to_vec`].
    pub fn load_tensors_from(&self, tensors: &mut [Tensor], flat: &[f32]) -> Result<()> {
        self.check_len(flat.len())?;
        self.check_list(tensors)?;
        tch::no_grad(|| -> Result<()> {
            for (slot, tensor) in self.slots.iter().zip(tensors.iter_mut()) {
                let values = &flat[slot.range()];
                // SAFETY: `values` holds `slot.numel` initialised f32s, which is what a contiguous
                // CPU tensor of `slot.shape` and kind Float reads. The borrowed tensor `src` does
                // not outlive `values`: it is dropped at the end of this iteration, and `copy_`
                // (synchronous: no `non_blocking`) has finished reading it by then. libtorch
                // never writes to `src`.
                let src = unsafe {
                    Tensor::f_from_blob(
                        values.as_ptr().cast::<u8>(),
                        &slot.shape,
                        &[],
                        Kind::Float,
                        Device::Cpu,
                    )?
                };
                tensor.f_copy_(&src)?;
            }
            Ok(())
        })
    }

    /// `vs`'s variables in layout order, after checking names, shapes and kinds.
    fn ordered(&self, vs: &VarStore) -> Result<Vec<Tensor>> {
        let mut variables = vs.variables();
        let mut tensors = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let Some(tensor) = variables.remove(&slot.name) else {
                return Err(Error::MissingParameter {
                    name: slot.name.clone(),
                    expected: Some(slot.shape.clone()),
                    place: VAR_STORE.to_owned(),
                });
            };
            self.check_tensor(slot, &tensor, VAR_STORE)?;
            tensors.push(tensor);
        }
        self.check_no_extra(variables.iter(), VAR_STORE)?;
        Ok(tensors)
    }

    /// Checks a list of tensors given in layout order.
    fn check_list(&self, tensors: &[Tensor]) -> Result<()> {
        if let Some(slot) = self.slots.get(tensors.len()) {
            return Err(Error::MissingParameter {
                name: slot.name.clone(),
                expected: Some(slot.shape.clone()),
                place: format!("{TENSOR_LIST} (it has {} tensors)", tensors.len()),
            });
        }
        if let Some(extra) = tensors.get(self.slots.len()) {
            return Err(Error::UnexpectedParameter {
                name: format!("#{}", self.slots.len()),
                found: extra.size(),
                place: format!(
                    "{TENSOR_LIST} (the layout has {} tensors)",
                    self.slots.len()
                ),
            });
        }
        for (slot, tensor) in self.slots.iter().zip(tensors) {
            self.check_tensor(slot, tensor, TENSOR_LIST)?;
        }
        Ok(())
    }

    /// Checks one tensor's kind and shape against its slot.
    fn check_tensor(&self, slot: &Slot, tensor: &Tensor, place: &str) -> Result<()> {
        check_kind(&slot.name, tensor, place)?;
        let found = tensor.size();
        if found != slot.shape {
            return Err(Error::ShapeMismatch {
                name: slot.name.clone(),
                expected: slot.shape.clone(),
                found,
                place: place.to_owned(),
            });
        }
        Ok(())
    }

    /// Refuses the first (in name order) of `tensors` that the layout does not have.
    fn check_no_extra<'a>(
        &self,
        tensors: impl Iterator<Item = (&'a String, &'a Tensor)>,
        place: &str,
    ) -> Result<()> {
        let extra: BTreeSet<(&String, Vec<i64>)> = tensors
            .filter(|(name, _)| !self.index.contains_key(name.as_str()))
            .map(|(name, tensor)| (name, tensor.size()))
            .collect();
        match extra.into_iter().next() {
            Some((name, found)) => Err(Error::UnexpectedParameter {
                name: name.clone(),
                found,
                place: place.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a flat vector of another length than the layout's.
    fn check_len(&self, found: usize) -> Result<()> {
        if found == self.len {
            Ok(())
        } else {
            Err(Error::ParameterCount {
                expected: self.len,
                found,
            })
        }
    }
}

/// The number of values of a tensor of `shape`.
fn numel_of(name: &str, shape: &[i64]) -> Result<usize> {
    shape.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .ok_or_else(|| Error::InvalidShape {
                name: name.to_owned(),
                shape: shape.to_vec(),
            })
    })
}

/// Refuses a tensor that is not `f32`.
fn check_kind(name: &str, tensor: &Tensor, place: &str) -> Result<()> {
    let kind = tensor.f_kind()?;
    if kind == Kind::Float {
        Ok(())
    } else {
        Err(Error::ParameterKind {
            name: name.to_owned(),
            kind: format!("{kind:?}"),
            place: place.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tch::nn::Init;

    /// A store with `fc.weight` [2, 3] = 0..6 and `fc.bias` [2] = [10, 11].
    fn small_store() -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let fc = vs.root().sub("fc");
        let mut w = fc.var("weight", &[2, 3], Init::Const(0.0));
        let mut b = fc.var("bias", &[2], Init::Const(0.0));
        tch::no_grad(|| {
            w.copy_(&Tensor::arange(6, (Kind::Float, Device::Cpu)).view([2, 3]));
            b.copy_(&Tensor::from_slice(&[10f32, 11.0]));
        });
        vs
    }

    #[test]
    fn sorted_layout_reads_row_major_in_name_order() {
        let vs = small_store();
        let layout = Layout::from_var_store(&vs).unwrap();
        assert_eq!(layout.names().collect::<Vec<_>>(), ["fc.bias", "fc.weight"]);
        assert_eq!(layout.slots()[1].offset(), 2);
        assert_eq!(
            layout.to_vec(&vs).unwrap(),
            [10.0, 11.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        let ordered = Layout::from_var_store_in_order(&vs, &["fc.weight", "fc.bias"]).unwrap();
        assert_eq!(
            ordered.to_vec(&vs).unwrap(),
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 11.0]
        );
    }

    #[test]
    fn load_writes_each_tensor_and_keeps_it_a_trainable_leaf() {
        let vs = small_store();
        let layout = Layout::from_var_store(&vs).unwrap();
        let flat: Vec<f32> = (0..8).map(|i| i as f32 * -0.5).collect();
        layout.load_from(&vs, &flat).unwrap();
        assert_eq!(layout.to_vec(&vs).unwrap(), flat);
        let w = &vs.variables()["fc.weight"];
        assert!(w.requires_grad() && w.is_leaf());
        assert_eq!(w.double_value(&[1, 2]), -3.5); // flat[2 + 5]
    }

    #[test]
    fn wrong_length_is_refused_with_both_lengths_and_writes_nothing() {
        let vs = small_store();
        let layout = Layout::from_var_store(&vs).unwrap();
        let before = layout.to_vec(&vs).unwrap();
        let err = layout.load_from(&vs, &[1.0; 9]).unwrap_err();
        assert!(matches!(
            err,
            Error::ParameterCount {
                expected: 8,
                found: 9
            }
        ));
        assert_eq!(layout.to_vec(&vs).unwrap(), before);
        let mut out = [0f32; 7];
        assert_eq!(
            layout.copy_to(&vs, &mut out).unwrap_err().to_string(),
            "a flat parameter vector of this model has 8 values, got 7"
        );
    }

    #[test]
    fn missing_extra_and_reshaped_variables_are_named_with_both_shapes() {
        let vs = small_store();
        let layout = Layout::new([
            ("fc.weight", vec![2, 3]),
            ("fc.bias", vec![2]),
            ("out.bias", vec![4]),
        ])
        .unwrap();
        let err = layout.to_vec(&vs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter `out.bias` (shape [4]) is missing from the variable store; it must hold \
             the same tensors as the layout (the model's parameters)"
        );

        let layout = Layout::new([("fc.weight", vec![2, 3])]).unwrap();
        let err = layout.to_vec(&vs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the variable store has a parameter `fc.bias` (shape [2]) that the layout does not; \
             it must hold the same tensors as the layout (the model's parameters)"
        );

        let layout = Layout::new([("fc.weight", vec![3, 2]), ("fc.bias", vec![2])]).unwrap();
        let err = layout.load_from(&vs, &[0.0; 8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter `fc.weight` has shape [2, 3] in the variable store, \
             but the layout expects [3, 2]"
        );

        let err = Layout::from_var_store_in_order(&vs, &["fc.weight"]).unwrap_err();
        assert!(matches!(&err, Error::UnexpectedParameter { name, .. } if name == "fc.bias"));
        let err = Layout::from_var_store_in_order(&vs, &["fc.weight", "fc.bias", "x"]).unwrap_err();
        assert!(matches!(&err, Error::MissingParameter { name, .. } if name == "x"));
        let err =
            Layout::from_var_store_in_order(&vs, &["fc.weight", "fc.bias", "fc.bias"]).unwrap_err();
        assert!(matches!(&err, Error::DuplicateParameter { name } if name == "fc.bias"));
    }

    #[test]
    fn tensor_lists_are_checked_by_length_and_shape() {
        let layout = Layout::new([("a", vec![2]), ("b", vec![1, 2])]).unwrap();
        let a = Tensor::from_slice(&[1f32, 2.0]);
        let b = Tensor::from_slice(&[3f32, 4.0]).view([1, 2]);
        let mut list = vec![a.shallow_clone(), b.shallow_clone()];
        assert_eq!(layout.tensors_to_vec(&list).unwrap(), [1.0, 2.0, 3.0, 4.0]);
        layout
            .load_tensors_from(&mut list, &[5.0, 6.0, 7.0, 8.0])
            .unwrap();
        assert_eq!(Vec::<f32>::try_from(&b.view([-1])).unwrap(), [7.0, 8.0]);

        let err = layout.tensors_to_vec(&list[..1]).unwrap_err();
        assert!(matches!(&err, Error::MissingParameter { name, .. } if name == "b"));
        list.push(Tensor::zeros([3], (Kind::Float, Device::Cpu)));
        let err = layout.tensors_to_vec(&list).unwrap_err();
        assert!(matches!(err, Error::UnexpectedParameter { .. }), "{err}");
        let swapped = [b.shallow_clone(), a.shallow_clone()];
        let err = layout.tensors_to_vec(&swapped).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, expected, found, .. }
                if name == "a" && expected == &[2] && found == &[1, 2]),
            "{err}"
        );
    }

    #[test]
    fn non_f32_variables_are_refused_naming_the_kind() {
        let mut vs = VarStore::new(Device::Cpu);
        let _w = vs.root().var("w", &[2], Init::Const(1.0));
        vs.double();
        let err = Layout::from_var_store(&vs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter `w` in the variable store is Double, but a flat parameter vector holds \
             f32 values; convert it to f32 first (`VarStore::float` for a model)"
        );
    }

    #[test]
    fn non_contiguous_tensors_are_read_and_written_in_row_major_order() {
        let layout = Layout::new([("t", vec![2, 3])]).unwrap();
        let base = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([3, 2]);
        let mut list = [base.tr()]; // [[0, 2, 4], [1, 3, 5]], a non-contiguous view
        assert!(!list[0].is_contiguous());
        assert_eq!(
            layout.tensors_to_vec(&list).unwrap(),
            [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
        );
        layout
            .load_tensors_from(&mut list, &[10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
            .unwrap();
        // Written through the view into the base tensor's storage.
        assert_eq!(
            Vec::<f32>::try_from(&base.reshape([-1])).unwrap(),
            [10.0, 13.0, 11.0, 14.0, 12.0, 15.0]
        );
    }

    #[test]
    fn layouts_refuse_duplicate_names_and_negative_dimensions() {
        let err = Layout::new([("a", vec![1]), ("a", vec![2])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the layout lists parameter `a` twice; give each tensor one name"
        );
        let err = Layout::new([("a", vec![2, -1])]).unwrap_err();
        assert!(matches!(err, Error::InvalidShape { .. }), "{err}");
        let empty = Layout::new(Vec::<(String, Vec<i64>)>::new()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.tensors_to_vec(&[]).unwrap(), Vec::<f32>::new());
    }
}
