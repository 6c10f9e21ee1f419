//! The dispatchers: an exhaustive `match` from the step enum to the step methods.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::{enum_name, variant_name};
use crate::model::{FlowDef, ParamKind, Role, Step};

pub fn generate(def: &FlowDef) -> TokenStream {
    let enum_name = enum_name(def);
    let agg_arms = def
        .steps
        .iter()
        .map(|s| arm(s, Role::Aggregator, &enum_name));
    let collab_arms = def
        .steps
        .iter()
        .map(|s| arm(s, Role::Collaborator, &enum_name));
    quote! {
        #[allow(unused_variables, unreachable_code)]
        fn run_aggregator_step(
            &mut self,
            step: #enum_name,
            ctx: &::flspec::__private::Ctx<'_>,
            private: &mut Self::Aggregator,
            inputs: ::core::option::Option<::flspec::__private::Inputs<Self>>,
        ) -> ::flspec::__private::StepOutcome<Self> {
            match step { #(#agg_arms)* }
        }

        #[allow(unused_variables, unreachable_code)]
        fn run_collaborator_step(
            &mut self,
            step: #enum_name,
            ctx: &::flspec::__private::Ctx<'_>,
            private: &mut Self::Collaborator,
        ) -> ::flspec::__private::StepOutcome<Self> {
            match step { #(#collab_arms)* }
        }
    }
}

fn role_tokens(role: Role) -> TokenStream {
    match role {
        Role::Aggregator => quote!(::flspec::__private::Role::Aggregator),
        Role::Collaborator => quote!(::flspec::__private::Role::Collaborator),
    }
}

fn arm(step: &Step, caller: Role, enum_name: &syn::Ident) -> TokenStream {
    let variant = variant_name(&step.ident);
    let name = step.ident.to_string();
    if step.role != caller {
        let expected = role_tokens(step.role);
        let actual = role_tokens(caller);
        return quote! {
            #enum_name::#variant => ::core::result::Result::Err(
                ::flspec::__private::StepError::WrongRole {
                    step: #name,
                    expected: #expected,
                    actual: #actual,
                }
            ),
        };
    }
    let ident = &step.ident;
    let args = step.params.iter().map(|p| match p.kind {
        ParamKind::Ctx => quote!(ctx),
        ParamKind::Inputs => quote!(inputs),
        ParamKind::Input => quote!(input),
        ParamKind::CollaboratorPrivate | ParamKind::AggregatorPrivate => quote!(private),
    });
    let call = quote_spanned! {ident.span()=>
        ::flspec::__private::IntoStepOutcome::<Self>::into_step_outcome(self.#ident(#(#args),*))
    };
    let guard = match caller {
        Role::Collaborator => quote!(),
        Role::Aggregator if step.is_fold() => quote! {
            let ::core::option::Option::Some(inputs) = inputs else {
                return ::core::result::Result::Err(
                    ::flspec::__private::StepError::MissingInputs { step: #name }
                );
            };
            let input = match inputs.into_single() {
                ::core::result::Result::Ok(input) => input,
                ::core::result::Result::Err(count) => {
                    return ::core::result::Result::Err(
                        ::flspec::__private::StepError::FoldInputs { step: #name, count }
                    );
                }
            };
        },
        Role::Aggregator if step.is_join() => quote! {
            let ::core::option::Option::Some(inputs) = inputs else {
                return ::core::result::Result::Err(
                    ::flspec::__private::StepError::MissingInputs { step: #name }
                );
            };
        },
        Role::Aggregator => quote! {
            if inputs.is_some() {
                return ::core::result::Result::Err(
                    ::flspec::__private::StepError::UnexpectedInputs { step: #name }
                );
            }
        },
    };
    quote! {
        #enum_name::#variant => {
            #guard
            #call
        }
    }
}
