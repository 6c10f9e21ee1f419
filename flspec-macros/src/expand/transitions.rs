//! The transition constructors that `next!(..)` calls were rewritten into.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use super::{enum_name, variant_name};
use crate::model::FlowDef;

pub fn generate(def: &FlowDef) -> TokenStream {
    let self_ty = &def.self_ty;
    let enum_name = enum_name(def);
    let ctors = def.transitions.iter().enumerate().map(|(i, t)| {
        let id = u16::try_from(i).expect("validate limits a flow to 65,536 transitions");
        let span = t.target.span();
        let ctor = format_ident!("__flspec_next_{}", i);
        let variant = variant_name(&t.target);
        match &t.foreach {
            Some(_) => quote_spanned! {span=>
                #[doc(hidden)]
                fn #ctor<I, S>(foreach: I) -> ::flspec::__private::Next<Self>
                where
                    I: ::core::iter::IntoIterator<Item = S>,
                    S: ::core::convert::AsRef<str>,
                {
                    ::flspec::__private::Next::__new(
                        #enum_name::#variant,
                        ::core::option::Option::Some(::flspec::__private::collect_names(foreach)),
                        #id,
                    )
                }
            },
            None => quote_spanned! {span=>
                #[doc(hidden)]
                fn #ctor() -> ::flspec::__private::Next<Self> {
                    ::flspec::__private::Next::__new(#enum_name::#variant, ::core::option::Option::None, #id)
                }
            },
        }
    });
    quote! {
        #[allow(clippy::all)]
        impl #self_ty {
            #(#ctors)*
        }
    }
}
