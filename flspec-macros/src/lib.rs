//! Procedural macros of flspec.
