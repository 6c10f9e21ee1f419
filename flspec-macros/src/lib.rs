//! Procedural macros of flspec: `#[flow]`, `#[aggregator]`, `#[collaborator]`.
//!
//! Use them through the `flspec` crate (`use flspec::prelude::*`), which documents each argument.
//! The pipeline is parse → model → validate → expand: `parse` turns the `impl` block into a
//! `model::FlowDef`, `validate` checks the step graph and collects every error at its span,
//! and `expand` generates the step enum, the dispatcher, the field filters and the graph.

mod ctxt;
mod expand;
mod model;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Implemented by the `flspec-macros` crate.
#[proc_macro_attribute]
pub fn flow(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::flow(args.into(), input.into()).into()
}

/// Implemented by the `flspec-macros` crate.
#[proc_macro_attribute]
pub fn aggregator(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::fallback::stray_role_attribute("aggregator", args.into(), input.into()).into()
}

/// Implemented by the `flspec-macros` crate.
#[proc_macro_attribute]
pub fn collaborator(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::fallback::stray_role_attribute("collaborator", args.into(), input.into()).into()
}
