//! What `#[flow]` emits when the flow has errors: the user's impl (so the IDE keeps working),
//! the step enum and a stub `Flow` impl (so no "trait not implemented" cascade follows), and the
//! errors. Also the error of a role attribute used outside a `#[flow]` impl.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemImpl;

use super::{enum_name, variant_name};
use crate::model::FlowDef;

pub fn with_errors(def: Option<&FlowDef>, item: &ItemImpl, errors: syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let Some(def) = def else {
        // `#[flow]` gave up on this impl (a trait impl, a generic flow) and emits no `Flow`
        // impl; a generic impl assumes one, so that its `Next<Self>` adds no error.
        let mut item = item.clone();
        if !item.generics.params.is_empty() && item.trait_.is_none() {
            item.generics
                .make_where_clause()
                .predicates
                .push(syn::parse_quote!(Self: ::flspec::__private::Flow));
        }
        return quote!(#item #errors);
    };
    let self_ty = &def.self_ty;
    let enum_name = enum_name(def);
    let mut seen = Vec::new();
    let variants: Vec<_> = def
        .steps
        .iter()
        .map(|s| variant_name(&s.ident))
        .filter(|v| {
            let new = !seen.contains(v);
            seen.push(v.clone());
            new
        })
        .collect();
    let ctors = (0..def.transitions.len()).map(|i| {
        let ctor = format_ident!("__flspec_next_{}", i);
        quote! {
            #[doc(hidden)]
            #[allow(unused_variables)]
            fn #ctor<T>(_: T) -> ::flspec::__private::Next<Self> { ::core::unreachable!() }
        }
    });
    let collab = def
        .collaborator_ty
        .as_ref()
        .map_or_else(|| quote!(()), |t| quote!(#t));
    let agg = def
        .aggregator_ty
        .as_ref()
        .map_or_else(|| quote!(()), |t| quote!(#t));
    let name = def.name.to_string();
    let checks = super::state_checks(def);
    // Fallback constructors take one argument; calls without one would add a second error.
    let mut item = patch_arity(item);
    remove_duplicate_steps(def, &mut item);
    quote! {
        #item
        #errors

        #[allow(dead_code)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug,
                 ::core::cmp::PartialEq, ::core::cmp::Eq, ::core::hash::Hash)]
        pub enum #enum_name { #(#variants,)* #[doc(hidden)] __FlspecInvalid }

        impl ::core::fmt::Display for #enum_name {
            fn fmt(&self, _: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::unreachable!()
            }
        }

        impl ::core::str::FromStr for #enum_name {
            type Err = ::flspec::__private::UnknownStep;
            fn from_str(_: &str) -> ::core::result::Result<Self, Self::Err> { ::core::unreachable!() }
        }

        impl ::flspec::__private::StepId for #enum_name {
            const START: Self = Self::__FlspecInvalid;
            const END: Self = Self::__FlspecInvalid;
            fn as_str(self) -> &'static str { ::core::unreachable!() }
            fn index(self) -> usize { ::core::unreachable!() }
            fn from_index(_: usize) -> ::core::option::Option<Self> { ::core::unreachable!() }
        }

        #[allow(clippy::all)]
        impl #self_ty { #(#ctors)* }

        impl ::flspec::__private::FlowSteps for #self_ty {
            type Step = #enum_name;
        }

        impl ::flspec::__private::PrivateStates<#collab, #agg> for #self_ty #checks {}

        impl ::flspec::__private::Flow for #self_ty #checks {
            type Collaborator = #collab;
            type Aggregator = #agg;
            const NAME: &'static str = #name;
            fn graph() -> &'static ::flspec::__private::Graph { ::core::unreachable!() }
            fn run_aggregator_step(
                &mut self,
                _: #enum_name,
                _: &::flspec::__private::Ctx<'_>,
                _: &mut Self::Aggregator,
                _: ::core::option::Option<::flspec::__private::Inputs<Self>>,
            ) -> ::flspec::__private::StepOutcome<Self> { ::core::unreachable!() }
            fn run_collaborator_step(
                &mut self,
                _: #enum_name,
                _: &::flspec::__private::Ctx<'_>,
                _: &mut Self::Collaborator,
            ) -> ::flspec::__private::StepOutcome<Self> { ::core::unreachable!() }
            fn filter_in_place(&mut self, _: ::flspec::__private::TransitionId) {}
            fn take_addressed(&mut self) -> ::core::option::Option<Self> { ::core::unreachable!() }
            fn give_addressed(_: &mut Self, _: &mut Self, _: &str) {}
            fn filtered_clone(&mut self, _: ::flspec::__private::TransitionId) -> Self {
                ::core::unreachable!()
            }
        }
    }
}

/// Makes every `Self::__flspec_next_N()` call pass a unit argument, to fit the fallback
/// constructors' single parameter.
fn patch_arity(item: &ItemImpl) -> ItemImpl {
    use syn::visit_mut::VisitMut;
    struct Patch;
    impl VisitMut for Patch {
        fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
            syn::visit_mut::visit_expr_call_mut(self, call);
            if let syn::Expr::Path(p) = &*call.func
                && p.path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident.to_string().starts_with("__flspec_next_"))
                && call.args.is_empty()
            {
                call.args.push(syn::parse_quote!(()));
            }
        }
    }
    let mut item = item.clone();
    Patch.visit_item_impl_mut(&mut item);
    item
}

/// Drops the second and later methods named like an earlier step: `validate` reported the
/// duplicate step, and rustc would report it again as duplicate definitions.
fn remove_duplicate_steps(def: &FlowDef, item: &mut ItemImpl) {
    let mut seen: Vec<syn::Ident> = Vec::new();
    item.items.retain(|it| {
        let syn::ImplItem::Fn(f) = it else {
            return true;
        };
        let name = &f.sig.ident;
        if !def.steps.iter().any(|s| s.ident == *name) {
            return true;
        }
        if seen.contains(name) {
            return false;
        }
        seen.push(name.clone());
        true
    });
}

/// `#[aggregator]` or `#[collaborator]` outside a `#[flow]` impl: the item, unchanged, and an
/// error that says where the attribute belongs.
pub fn stray_role_attribute(role: &str, _args: TokenStream, input: TokenStream) -> TokenStream {
    let msg = format!(
        "`#[{role}]` marks a step of a flow; put it on a method of an `impl` block that has `#[flow]`"
    );
    let err = syn::Error::new(proc_macro2::Span::call_site(), msg).to_compile_error();
    quote!(#err #input)
}
