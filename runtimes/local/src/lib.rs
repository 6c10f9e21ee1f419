//! The local runtime of flspec.
