//! Models, with their parameters as one flat `f32` vector for `flspec::fl::aggregate`.

pub mod mnist_cnn;
