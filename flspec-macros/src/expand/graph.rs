//! The static step graph returned by `Flow::graph()`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Fields, FlowDef, Role};

pub fn generate(def: &FlowDef) -> TokenStream {
    let name = def.name.to_string();
    let steps = def.steps.iter().map(|s| {
        let step = s.ident.to_string();
        let role = match s.role {
            Role::Aggregator => quote!(::flspec::__private::Role::Aggregator),
            Role::Collaborator => quote!(::flspec::__private::Role::Collaborator),
        };
        let join = s.is_join();
        if s.is_fold() {
            quote!(::flspec::__private::StepInfo::__new(#step, #role, #join).__folding())
        } else {
            quote!(::flspec::__private::StepInfo::__new(#step, #role, #join))
        }
    });
    let index_of = |ident: &syn::Ident| {
        def.steps
            .iter()
            .position(|s| s.ident == *ident)
            .expect("validated: every transition joins two steps")
    };
    let transitions = def.transitions.iter().map(|t| {
        let from = index_of(&t.from);
        let to = index_of(&t.target);
        let foreach = t.foreach.is_some();
        let fields = match &t.fields {
            Fields::All => quote!(::flspec::__private::FieldFilter::All),
            Fields::Exclude(f) => {
                let f = f.iter().map(ToString::to_string);
                quote!(::flspec::__private::FieldFilter::Exclude(&[#(#f),*]))
            }
            Fields::Include(f) => {
                let f = f.iter().map(ToString::to_string);
                quote!(::flspec::__private::FieldFilter::Include(&[#(#f),*]))
            }
        };
        quote!(::flspec::__private::TransitionInfo::__new(#from, #to, #foreach, #fields))
    });
    quote! {
        static GRAPH: ::flspec::__private::Graph = ::flspec::__private::Graph::__new(
            #name,
            &[#(#steps),*],
            &[#(#transitions),*],
        );
        &GRAPH
    }
}
