//! Code generation from a validated model. Cannot fail: every user mistake was reported by
//! `parse` or `validate`.

mod dispatch;
pub mod fallback;
mod filter;
mod graph;
mod step_enum;
mod transitions;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Ident, ItemImpl};

use crate::ctxt::Ctxt;
use crate::model::FlowDef;
use crate::{parse, validate};

/// The whole `#[flow]` expansion.
pub fn flow(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let flow_args = parse::flow_args(&cx, args);
    let mut item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let _ = cx.finish();
            let msg = format!("`#[flow]` goes on the `impl` block of a flow state struct: {e}");
            let err = syn::Error::new(e.span(), msg).to_compile_error();
            return quote!(#input #err);
        }
    };
    let def = parse::flow_def(&cx, flow_args, &mut item);
    if let Some(def) = &def {
        validate::check(&cx, def);
    }
    match (cx.finish(), def) {
        (Ok(()), Some(def)) => generate(&def, &item),
        (Err(errors), def) => fallback::with_errors(def.as_ref(), &item, errors),
        (Ok(()), None) => unreachable!("parse returns None only after recording an error"),
    }
}

/// `train` → `Train`, `aggregated_model_validation` → `AggregatedModelValidation`.
pub fn variant_name(step: &Ident) -> Ident {
    let name = step.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let camel: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    format_ident!("{}", camel, span = step.span())
}

/// The step enum's name: `FedAvgFlow` → `FedAvgFlowStep`.
pub fn enum_name(def: &FlowDef) -> Ident {
    format_ident!("{}Step", def.name, span = def.name.span())
}

fn generate(def: &FlowDef, item: &ItemImpl) -> TokenStream {
    let step_enum = step_enum::generate(def);
    let transitions = transitions::generate(def);
    let flow_impl = flow_impl(def);
    quote! {
        #item
        #step_enum
        #transitions
        #flow_impl
    }
}

fn flow_impl(def: &FlowDef) -> TokenStream {
    let self_ty = &def.self_ty;
    let enum_name = enum_name(def);
    let name = def.name.to_string();
    let collab = def
        .collaborator_ty
        .as_ref()
        .map_or_else(|| quote!(()), |t| quote!(#t));
    let agg = def
        .aggregator_ty
        .as_ref()
        .map_or_else(|| quote!(()), |t| quote!(#t));
    let tolerate_dropouts = def.tolerate_dropouts;
    let resume_from = def.resume_from.iter().map(ToString::to_string);
    let graph = graph::generate(def);
    let dispatch = dispatch::generate(def);
    let filters = filter::generate(def);
    let checks = state_checks(def);
    quote! {
        impl ::flspec::__private::FlowSteps for #self_ty {
            type Step = #enum_name;
        }

        impl ::flspec::__private::PrivateStates<#collab, #agg> for #self_ty #checks {}

        impl ::flspec::__private::Flow for #self_ty #checks {
            type Collaborator = #collab;
            type Aggregator = #agg;
            const NAME: &'static str = #name;
            const TOLERATES_DROPOUTS: bool = #tolerate_dropouts;
            const RESUME_FROM: &'static [&'static str] = &[#(#resume_from),*];

            fn graph() -> &'static ::flspec::__private::Graph {
                #graph
            }

            #dispatch
            #filters
        }
    }
}

/// The `where` clause of the `Flow` impl: what `Flow` requires of the state and the private
/// states, each on the user's tokens. A missing derive is then one error at the state struct
/// (inside the impl the clause is assumed, so nothing cascades), naming the derive to add; a
/// collaborator state that is not `Send` is reported at `#[flow(collaborator = T)]`.
pub fn state_checks(def: &FlowDef) -> TokenStream {
    let ty = &def.self_ty;
    let span = syn::spanned::Spanned::span(ty);
    let state = [
        "StateClone",
        "StateDefault",
        "StateSerialize",
        "StateDeserialize",
        "StateSend",
    ]
    .into_iter()
    .map(|t| {
        let t = format_ident!("{}", t, span = span);
        quote::quote_spanned!(span=> #ty: ::flspec::__private::#t)
    });
    let collab = def.collaborator_ty.as_ref().map(|c| {
        let span = syn::spanned::Spanned::span(c);
        quote::quote_spanned!(span=> #c: ::flspec::__private::CollaboratorSend)
    });
    quote! { where #(#state,)* #collab }
}

#[cfg(test)]
mod tests {
    use super::variant_name;
    use proc_macro2::Span;
    use syn::Ident;

    fn variant(step: &str) -> String {
        variant_name(&Ident::new(step, Span::call_site())).to_string()
    }

    #[test]
    fn variant_name_is_camel_case() {
        assert_eq!(variant("train"), "Train");
        assert_eq!(variant("start"), "Start");
        assert_eq!(
            variant("aggregated_model_validation"),
            "AggregatedModelValidation"
        );
    }

    #[test]
    fn variant_name_drops_extra_underscores() {
        assert_eq!(variant("_private"), "Private");
        assert_eq!(variant("local__train_"), "LocalTrain");
        assert_eq!(variant("step_1"), "Step1");
        assert_eq!(variant("step1"), "Step1");
    }

    #[test]
    fn variant_name_strips_raw_prefix() {
        let raw = Ident::new_raw("match", Span::call_site());
        assert_eq!(variant_name(&raw).to_string(), "Match");
    }
}
