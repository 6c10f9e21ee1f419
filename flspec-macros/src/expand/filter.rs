//! The field filters of `exclude`/`include`: `Flow::filter_in_place` and `Flow::filtered_clone`.
//!
//! Field accesses carry the user's spans, so an unknown field is a rustc error at the name the
//! user wrote, listing the available fields. Each access is written `(*self).field`, on the flow
//! type like the accesses to the other copies, so that rustc reports the field once.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::model::{Fields, FlowDef};

pub fn generate(def: &FlowDef) -> TokenStream {
    let mut in_place = Vec::new();
    let mut cloned = Vec::new();
    for (i, t) in def.transitions.iter().enumerate() {
        match &t.fields {
            Fields::All => {}
            Fields::Exclude(fields) => {
                let swaps: Vec<_> = fields
                    .iter()
                    .map(|f| {
                        quote_spanned!(f.span()=>
                            ::flspec::__private::swap(&mut (*self).#f, &mut __flspec_default.#f);)
                    })
                    .collect();
                in_place.push(quote! {
                    #i => {
                        let mut __flspec_default = <Self as ::core::default::Default>::default();
                        #(#swaps)*
                    }
                });
                cloned.push(quote! {
                    #i => {
                        let mut __flspec_default = <Self as ::core::default::Default>::default();
                        #(#swaps)*
                        let __flspec_copy = ::core::clone::Clone::clone(&*self);
                        #(#swaps)*
                        __flspec_copy
                    }
                });
            }
            Fields::Include(fields) => {
                let moves = fields.iter().map(|f| {
                    quote_spanned!(f.span()=>
                        ::flspec::__private::swap(&mut (*self).#f, &mut __flspec_kept.#f);)
                });
                let copies = fields.iter().map(|f| {
                    quote_spanned!(f.span()=>
                        __flspec_copy.#f = ::core::clone::Clone::clone(&(*self).#f);)
                });
                in_place.push(quote! {
                    #i => {
                        let mut __flspec_kept = <Self as ::core::default::Default>::default();
                        #(#moves)*
                        *self = __flspec_kept;
                    }
                });
                cloned.push(quote! {
                    #i => {
                        let mut __flspec_copy = <Self as ::core::default::Default>::default();
                        #(#copies)*
                        __flspec_copy
                    }
                });
            }
        }
    }
    let addressed = addressed(def);
    quote! {
        #addressed

        fn filter_in_place(&mut self, transition: ::flspec::__private::TransitionId) {
            match transition.index() {
                #(#in_place)*
                _ => {}
            }
        }

        fn filtered_clone(&mut self, transition: ::flspec::__private::TransitionId) -> Self {
            match transition.index() {
                #(#cloned)*
                _ => ::core::clone::Clone::clone(&*self),
            }
        }
    }
}

/// `Flow::take_addressed` and `Flow::give_addressed`.
fn addressed(def: &FlowDef) -> TokenStream {
    if def.addressed.is_empty() {
        return quote! {
            fn take_addressed(&mut self) -> ::core::option::Option<Self> {
                ::core::option::Option::None
            }
            fn give_addressed(_: &mut Self, _: &mut Self, _: &str) {}
        };
    }
    let takes = def.addressed.iter().map(|f| {
        quote_spanned!(f.span()=> ::flspec::__private::swap(&mut (*self).#f, &mut __flspec_parts.#f);)
    });
    let gives = def.addressed.iter().map(|f| {
        quote_spanned!(f.span()=>
            (*copy).#f = ::flspec::__private::take_for(&mut (*parts).#f, collaborator);)
    });
    quote! {
        fn take_addressed(&mut self) -> ::core::option::Option<Self> {
            let mut __flspec_parts = <Self as ::core::default::Default>::default();
            #(#takes)*
            ::core::option::Option::Some(__flspec_parts)
        }
        fn give_addressed(copy: &mut Self, parts: &mut Self, collaborator: &str) {
            #(#gives)*
        }
    }
}
