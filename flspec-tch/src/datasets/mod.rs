//! Data sets and their loaders. They need no libtorch: they hand out bytes and labels, which
//! [`flspec::fl::partition`] splits across sites and [`crate::train`] turns into tensors.

pub mod mnist;
