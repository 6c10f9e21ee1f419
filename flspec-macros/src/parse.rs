//! syn → model: the `#[flow(..)]` arguments, the step methods and their `next!` calls.
//!
//! Parsing also rewrites the user's `impl` block: role attributes are removed and every
//! `next!(..)` becomes a call to a generated transition constructor,
//! `Self::__flspec_next_<id>(..)`, which `expand` defines.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Expr, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Macro, ReturnType, Token, Type,
};

use crate::ctxt::Ctxt;
use crate::model::{Fields, FlowDef, Param, ParamKind, Role, Step, Transition};

mod fields;
mod tail;

/// The `#[flow(..)]` arguments.
#[derive(Default)]
pub struct FlowArgs {
    pub collaborator: Option<Type>,
    pub aggregator: Option<Type>,
    pub tolerate_dropouts: bool,
    pub addressed: Vec<Ident>,
    pub resume_from: Vec<Ident>,
}

pub fn flow_args(cx: &Ctxt, args: TokenStream) -> FlowArgs {
    let mut out = FlowArgs::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.get_ident().map(ToString::to_string);
        if key.as_deref() == Some("tolerate_dropouts") {
            if out.tolerate_dropouts {
                return Err(meta.error("duplicate `#[flow]` argument; give each one once"));
            }
            out.tolerate_dropouts = true;
            return Ok(());
        }
        if let Some(what @ ("addressed" | "resume_from")) = key.as_deref() {
            let (list, noun) = match what {
                "addressed" => (&mut out.addressed, "field"),
                _ => (&mut out.resume_from, "step"),
            };
            if !list.is_empty() {
                return Err(meta.error("duplicate `#[flow]` argument; give each one once"));
            }
            let value = meta.value()?;
            let content;
            syn::bracketed!(content in value);
            let items: Punctuated<Ident, Token![,]> =
                content.parse_terminated(Ident::parse, Token![,])?;
            for (i, f) in items.iter().enumerate() {
                if items.iter().take(i).any(|p| p == f) {
                    return Err(syn::Error::new_spanned(
                        f,
                        format_args!("{noun} `{f}` is listed twice"),
                    ));
                }
            }
            *list = items.into_iter().collect();
            return Ok(());
        }
        let slot = match key.as_deref() {
            Some("collaborator") => &mut out.collaborator,
            Some("aggregator") => &mut out.aggregator,
            _ => {
                let key = meta.path.to_token_stream().to_string().replace(' ', "");
                return Err(meta.error(format_args!(
                    "unknown `#[flow]` argument `{key}`; expected `collaborator = Type`, `aggregator = Type`, `addressed = [fields]`, `resume_from = [steps]` or `tolerate_dropouts`"
                )));
            }
        };
        if slot.is_some() {
            return Err(meta.error("duplicate `#[flow]` argument; give each one once"));
        }
        *slot = Some(meta.value()?.parse::<Type>()?);
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(e);
    }
    out
}

/// Parses the impl block into the model and rewrites it in place.
pub fn flow_def(cx: &Ctxt, args: FlowArgs, item: &mut ItemImpl) -> Option<FlowDef> {
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[flow]` goes on the inherent `impl` block of the flow state, not on a trait impl",
        );
        strip_flow_syntax(item);
        return None;
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            "generic flows are not supported; give the flow state concrete types",
        );
        strip_flow_syntax(item);
        return None;
    }
    let name = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let Some(name) = name else {
        cx.error_spanned_by(
            &item.self_ty,
            "`#[flow]` needs the flow state struct as the impl's type, e.g. `impl MyFlow`",
        );
        strip_flow_syntax(item);
        return None;
    };
    let mut def = FlowDef {
        self_ty: (*item.self_ty).clone(),
        name,
        collaborator_ty: args.collaborator,
        aggregator_ty: args.aggregator,
        tolerate_dropouts: args.tolerate_dropouts,
        addressed: args.addressed,
        resume_from: args.resume_from,
        steps: Vec::new(),
        transitions: Vec::new(),
        helpers: Vec::new(),
    };
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let role = take_role(cx, &mut method.attrs);
        let results = tail::result_nexts(&method.block);
        let inputs = fields::inputs_name(&method.sig);
        let input = fields::input_name(&method.sig);
        let mut rewriter = NextRewriter {
            cx: Some(cx),
            from: method.sig.ident.clone(),
            transitions: &mut def.transitions,
            calls: 0,
            failed: false,
            results: Some(results),
        };
        rewriter.visit_block_mut(&mut method.block);
        let calls = rewriter.calls;
        if rewriter.failed {
            // The `next!` that did not parse became `unreachable!()`: the variables it used
            // would be reported unused on top of the parse error.
            method
                .attrs
                .push(syn::parse_quote!(#[allow(unused_variables)]));
        }
        match role {
            Some((role, role_attr)) => {
                let params = step_params(cx, &def, method, role);
                // After the rewrite: `foreach = self.x` is a plain read of `self.x` by then.
                let uses = fields::field_uses(&method.block, inputs.as_ref(), input.as_ref());
                def.steps.push(Step {
                    ident: method.sig.ident.clone(),
                    role,
                    role_attr,
                    params,
                    next_calls: calls,
                    uses,
                });
            }
            None => {
                if calls > 0 {
                    cx.error_spanned_by(
                        &method.sig.ident,
                        format_args!(
                            "`{}` calls `next!` but is not a step; mark it `#[aggregator]` or `#[collaborator]`",
                            method.sig.ident
                        ),
                    );
                } else if returns_next(&method.sig.output) {
                    cx.error_spanned_by(
                        &method.sig.ident,
                        format_args!(
                            "`{}` returns `Next<Self>` but is not a step; mark it `#[aggregator]` or `#[collaborator]`",
                            method.sig.ident
                        ),
                    );
                }
                def.helpers.push(method.sig.ident.clone());
            }
        }
    }
    Some(def)
}

/// What is left of the impl block once `#[flow]` gave up on it (a trait impl, a generic flow):
/// role attributes and `next!` calls are removed without further errors, so that they do not
/// add "`#[aggregator]` outside a flow" or "`next!` outside a flow" errors.
fn strip_flow_syntax(item: &mut ItemImpl) {
    let mut transitions = Vec::new();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|a| role_of(a).is_none());
            let mut rewriter = NextRewriter {
                cx: None,
                from: method.sig.ident.clone(),
                transitions: &mut transitions,
                calls: 0,
                failed: false,
                results: None,
            };
            rewriter.visit_block_mut(&mut method.block);
            if rewriter.calls > 0 {
                method
                    .attrs
                    .push(syn::parse_quote!(#[allow(unused_variables)]));
            }
        }
    }
}

fn role_of(attr: &Attribute) -> Option<Role> {
    match attr.path().segments.last()?.ident.to_string().as_str() {
        "aggregator" => Some(Role::Aggregator),
        "collaborator" => Some(Role::Collaborator),
        _ => None,
    }
}

/// Removes `#[aggregator]` / `#[collaborator]` from a method and returns its role and the
/// attribute's tokens.
fn take_role(cx: &Ctxt, attrs: &mut Vec<Attribute>) -> Option<(Role, TokenStream)> {
    let mut found: Option<(Role, TokenStream)> = None;
    attrs.retain(|attr| {
        let Some(role) = role_of(attr) else {
            return true;
        };
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            cx.error_spanned_by(
                attr,
                format_args!("`#[{}]` takes no arguments", role.as_str()),
            );
        }
        match found {
            Some((prev, _)) if prev != role => cx.error_spanned_by(
                attr,
                "a step is either `#[aggregator]` or `#[collaborator]`, not both; remove one",
            ),
            Some(_) => cx.error_spanned_by(
                attr,
                format_args!("duplicate `#[{}]`; remove one", role.as_str()),
            ),
            None => found = Some((role, attr.to_token_stream())),
        }
        false
    });
    found
}

fn returns_next(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    match &**ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Next"),
        _ => false,
    }
}

fn same_type(a: &Type, b: &Type) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

/// Tokens as a user would write them in a message: `&mut Site`, not `& mut Site`.
fn type_str(tokens: impl ToTokens) -> String {
    tidy_tokens(&tokens.to_token_stream().to_string())
}

fn tidy_tokens(s: &str) -> String {
    let mut out = s.to_owned();
    for (from, to) in [
        ("& ", "&"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
    ] {
        out = out.replace(from, to);
    }
    out
}

fn last_ident_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        _ => false,
    }
}

fn step_params(cx: &Ctxt, def: &FlowDef, method: &ImplItemFn, role: Role) -> Vec<Param> {
    let sig = &method.sig;
    if let Some(a) = &sig.asyncness {
        cx.error_spanned_by(a, "steps are synchronous; remove `async`");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, "steps cannot be generic");
    }
    let mut params: Vec<Param> = Vec::new();
    let mut receiver_ok = false;
    for arg in &sig.inputs {
        let pat_ty = match arg {
            FnArg::Receiver(r) => {
                if r.reference.is_none() || r.mutability.is_none() || r.colon_token.is_some() {
                    cx.error_spanned_by(
                        r,
                        format_args!(
                            "step `{}` takes `{}`; a step takes `&mut self`",
                            sig.ident,
                            type_str(r)
                        ),
                    );
                }
                receiver_ok = true;
                continue;
            }
            FnArg::Typed(t) => t,
        };
        let ty = &*pat_ty.ty;
        let Some(kind) = param_kind(cx, def, ty, role) else {
            continue;
        };
        let both = |a, b| kind == a && params.iter().any(|p| p.kind == b);
        if both(ParamKind::Input, ParamKind::Inputs) || both(ParamKind::Inputs, ParamKind::Input) {
            cx.error_spanned_by(
                ty,
                format_args!(
                    "step `{}` cannot take both `Inputs<Self>` and `Input<Self>`: a join takes all its inputs at once (`inputs: Inputs<Self>`) or, folding, one at a time (`input: Input<Self>`); keep one",
                    sig.ident
                ),
            );
            continue;
        }
        if params.iter().any(|p| p.kind == kind) {
            cx.error_spanned_by(
                ty,
                format_args!(
                    "step `{}` already takes a `{}`; remove this parameter",
                    sig.ident,
                    type_str(ty)
                ),
            );
            continue;
        }
        params.push(Param { kind });
    }
    if !receiver_ok {
        cx.error_spanned_by(
            &sig.ident,
            format_args!(
                "step `{}` has no `self`; give it `&mut self` as its first parameter",
                sig.ident
            ),
        );
    }
    params
}

fn param_kind(cx: &Ctxt, def: &FlowDef, ty: &Type, role: Role) -> Option<ParamKind> {
    let options = param_options(def, role);
    match ty {
        Type::Reference(r) if r.mutability.is_none() && last_ident_is(&r.elem, "Ctx") => {
            Some(ParamKind::Ctx)
        }
        Type::Path(_) if last_ident_is(ty, "Inputs") => {
            if role == Role::Collaborator {
                cx.error_spanned_by(
                    ty,
                    "a collaborator step cannot take `Inputs`; only aggregator steps can be joins",
                );
                return None;
            }
            Some(ParamKind::Inputs)
        }
        Type::Path(_) if last_ident_is(ty, "Input") => {
            if role == Role::Collaborator {
                cx.error_spanned_by(
                    ty,
                    "a collaborator step cannot take `Input`; only aggregator steps can be joins",
                );
                return None;
            }
            Some(ParamKind::Input)
        }
        Type::Reference(r) if r.mutability.is_some() => {
            let elem = &*r.elem;
            let is_collab = def
                .collaborator_ty
                .as_ref()
                .is_some_and(|c| same_type(c, elem));
            let is_agg = def
                .aggregator_ty
                .as_ref()
                .is_some_and(|a| same_type(a, elem));
            match role {
                Role::Collaborator if is_collab => Some(ParamKind::CollaboratorPrivate),
                Role::Aggregator if is_agg => Some(ParamKind::AggregatorPrivate),
                Role::Collaborator if is_agg => {
                    cx.error_spanned_by(
                        ty,
                        format_args!(
                            "a collaborator step cannot take the aggregator's private state `{}`; {options}",
                            type_str(elem)
                        ),
                    );
                    None
                }
                Role::Aggregator if is_collab => {
                    cx.error_spanned_by(
                        ty,
                        format_args!(
                            "an aggregator step cannot take a collaborator's private state `{}`; {options}",
                            type_str(elem)
                        ),
                    );
                    None
                }
                _ => {
                    let which = role.as_str();
                    cx.error_spanned_by(
                        ty,
                        format_args!(
                            "`{}` is not this flow's private state; declare it with `#[flow({which} = {})]` or remove the parameter; {options}",
                            type_str(ty),
                            type_str(elem)
                        ),
                    );
                    None
                }
            }
        }
        _ => {
            cx.error_spanned_by(
                ty,
                format_args!("unsupported step parameter `{}`; {options}", type_str(ty)),
            );
            None
        }
    }
}

fn param_options(def: &FlowDef, role: Role) -> String {
    let (mut options, private) = match role {
        Role::Aggregator => (
            vec![
                "`&Ctx`".to_owned(),
                "`Inputs<Self>` (joins)".to_owned(),
                "`Input<Self>` (folding joins)".to_owned(),
            ],
            &def.aggregator_ty,
        ),
        Role::Collaborator => (vec!["`&Ctx`".to_owned()], &def.collaborator_ty),
    };
    if let Some(t) = private {
        options.push(format!("`&mut {}`", type_str(t)));
    }
    format!(
        "{} steps may take {}",
        role.as_str(),
        one_of(&options, "and")
    )
}

/// `a`, `a and b`, `a, b and c`.
fn one_of(items: &[String], conj: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conj} {last}", init.join(", ")),
    }
}

/// Finds `next!(..)` calls in a method body, records them and rewrites them.
struct NextRewriter<'a> {
    /// Where errors go; `None` when `#[flow]` already gave up on the impl and only strips it.
    cx: Option<&'a Ctxt>,
    from: Ident,
    transitions: &'a mut Vec<Transition>,
    /// Every `next!` seen, including those whose arguments did not parse.
    calls: usize,
    /// Whether a `next!` did not parse (and became `panic!()`).
    failed: bool,
    /// The ordinals of the `next!` calls in result position ([`tail::result_nexts`]); `None`
    /// when nothing is checked.
    results: Option<std::collections::HashSet<usize>>,
}

pub(crate) fn is_next_macro(mac: &Macro) -> bool {
    mac.path.segments.last().is_some_and(|s| s.ident == "next")
}

impl NextRewriter<'_> {
    /// The replacement of one `next!(..)`.
    fn rewrite(&mut self, mac: &Macro) -> Expr {
        let ordinal = self.calls;
        self.calls += 1;
        if let (Some(cx), Some(results)) = (self.cx, &self.results)
            && !results.contains(&ordinal)
        {
            cx.error_spanned_by(
                mac,
                "this `next!` is not the step's result: its transition would never be taken, yet it would add an edge to the flow's graph; make it the last expression of the step (or of an `if`/`match` branch there), `return` it, or remove it",
            );
        }
        let span = mac.span();
        let id = self.transitions.len();
        let ctor = format_ident!("__flspec_next_{}", id, span = span);
        let parsed = if mac.tokens.is_empty() {
            Err(syn::Error::new_spanned(
                mac,
                "`next!` needs the step to go to, e.g. `next!(self.train)`",
            ))
        } else {
            // `parse_body` reports a missing token at the closing delimiter, not at `#[flow]`.
            mac.parse_body::<NextArgs>()
        };
        match (parsed, self.cx) {
            (Ok(args), cx) => {
                if let Some(cx) = cx {
                    for e in args.errors {
                        cx.syn_error(e);
                    }
                }
                let call = match &args.foreach {
                    Some(e) => quote_spanned!(span=> Self::#ctor(#e)),
                    None => quote_spanned!(span=> Self::#ctor()),
                };
                self.transitions.push(Transition {
                    from: self.from.clone(),
                    target: args.target,
                    foreach: args.foreach,
                    fields: args.fields,
                });
                if self.cx.is_none() {
                    return syn::parse2(quote_spanned!(span=> ::core::panic!()))
                        .expect("panic!() parses");
                }
                syn::parse2(call).expect("a path call parses as an expression")
            }
            (Err(e), cx) => {
                if let Some(cx) = cx {
                    cx.syn_error(e);
                }
                self.failed = true;
                syn::parse2(quote_spanned!(span=> ::core::panic!())).expect("panic!() parses")
            }
        }
    }
}

impl VisitMut for NextRewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Macro(m) = expr
            && is_next_macro(&m.mac)
        {
            *expr = self.rewrite(&m.mac);
            return;
        }
        syn::visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_stmt_mut(&mut self, stmt: &mut syn::Stmt) {
        if let syn::Stmt::Macro(m) = stmt
            && is_next_macro(&m.mac)
        {
            let expr = self.rewrite(&m.mac);
            *stmt = syn::Stmt::Expr(expr, m.semi_token);
            return;
        }
        syn::visit_mut::visit_stmt_mut(self, stmt);
    }
}

/// The arguments of `next!`: `self.step` then `foreach = ..`, `exclude = [..]`, `include = [..]`.
///
/// Malformed syntax and unknown arguments fail the parse. A mistake in well-formed arguments (a
/// repeated argument, a field listed twice, both `exclude` and `include`) is kept in `errors`
/// and the transition is still recorded, so that the graph checks see the whole graph and do
/// not report a "never calls `next!`" or "unreachable" that is only a consequence.
struct NextArgs {
    target: Ident,
    foreach: Option<Expr>,
    fields: Fields,
    errors: Vec<syn::Error>,
}

const TARGET_HELP: &str = "expected `self.<step>`, e.g. `next!(self.train)`";

impl Parse for NextArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let target: Expr = input.parse()?;
        let target = match &target {
            Expr::Field(f) if matches!(&*f.base, Expr::Path(p) if p.path.is_ident("self")) => {
                match &f.member {
                    syn::Member::Named(ident) => ident.clone(),
                    syn::Member::Unnamed(_) => {
                        return Err(syn::Error::new_spanned(&target, TARGET_HELP));
                    }
                }
            }
            _ => return Err(syn::Error::new_spanned(&target, TARGET_HELP)),
        };
        let mut errors = Vec::new();
        let mut foreach = None;
        let mut exclude: Option<(Ident, Vec<Ident>)> = None;
        let mut include: Option<(Ident, Vec<Ident>)> = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "foreach" => {
                    let list = input.parse::<Expr>()?;
                    if foreach.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &key,
                            "duplicate `foreach`; give one list of collaborators",
                        ));
                    } else {
                        foreach = Some(list);
                    }
                }
                "exclude" | "include" => {
                    let content;
                    syn::bracketed!(content in input);
                    let listed: Punctuated<Ident, Token![,]> =
                        content.parse_terminated(Ident::parse, Token![,])?;
                    let mut fields: Vec<Ident> = Vec::new();
                    for f in listed {
                        if fields.contains(&f) {
                            errors.push(syn::Error::new_spanned(
                                &f,
                                format_args!("field `{f}` is listed twice; remove one"),
                            ));
                        } else {
                            fields.push(f);
                        }
                    }
                    let (slot, other, other_key) = if key == "exclude" {
                        (&mut exclude, &include, "include")
                    } else {
                        (&mut include, &exclude, "exclude")
                    };
                    if slot.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &key,
                            format_args!(
                                "duplicate `{key}`; list all its fields in one `{key} = [..]`"
                            ),
                        ));
                    } else if other.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &key,
                            format_args!(
                                "a transition takes either `exclude` or `include`, not both; remove `{key}` or `{other_key}`"
                            ),
                        ));
                    } else {
                        *slot = Some((key, fields));
                    }
                }
                _ => {
                    // Not a soft error: a misspelt `foreach` would otherwise be checked as a
                    // transition without a fan-out.
                    return Err(syn::Error::new_spanned(
                        &key,
                        format_args!(
                            "unknown `next!` argument `{key}`; expected `foreach = ..`, `exclude = [..]` or `include = [..]`"
                        ),
                    ));
                }
            }
        }
        let fields = match (exclude, include) {
            (Some((_, f)), _) => Fields::Exclude(f),
            (None, Some((_, f))) => Fields::Include(f),
            (None, None) => Fields::All,
        };
        Ok(NextArgs {
            target,
            foreach,
            fields,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_args(tokens: TokenStream) -> syn::Result<NextArgs> {
        syn::parse2(tokens)
    }

    fn messages(errors: &[syn::Error]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn tidy_tokens_writes_types_as_users_do() {
        assert_eq!(type_str(quote::quote!(&mut Site)), "&mut Site");
        assert_eq!(
            type_str(quote::quote!(&mut std::collections::HashMap<String, Vec<u8>>)),
            "&mut std::collections::HashMap<String, Vec<u8>>"
        );
        assert_eq!(type_str(quote::quote!(&self)), "&self");
    }

    #[test]
    fn one_of_lists_options() {
        let s = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(one_of(&s(&["a"]), "and"), "a");
        assert_eq!(one_of(&s(&["a", "b"]), "and"), "a and b");
        assert_eq!(one_of(&s(&["a", "b", "c"]), "or"), "a, b or c");
    }

    #[test]
    fn next_args_full_form() {
        let args = next_args(quote::quote!(
            self.train,
            foreach = ctx.collaborators(),
            exclude = [a, b,]
        ))
        .expect("parses");
        assert_eq!(args.target, "train");
        assert!(args.foreach.is_some());
        assert!(matches!(&args.fields, Fields::Exclude(f) if f.len() == 2));
        assert!(args.errors.is_empty());
    }

    #[test]
    fn next_args_mistakes_keep_the_transition() {
        let args = next_args(quote::quote!(
            self.join,
            include = [a, a],
            exclude = [b],
            foreach = x,
            foreach = y
        ))
        .expect("well-formed arguments parse");
        assert_eq!(args.target, "join");
        assert!(matches!(&args.fields, Fields::Include(f) if f.len() == 1));
        let msgs = messages(&args.errors);
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("listed twice"));
        assert!(msgs[1].contains("either `exclude` or `include`"));
        assert!(msgs[2].contains("duplicate `foreach`"));
    }

    #[test]
    fn next_args_unknown_argument_fails() {
        let err = next_args(quote::quote!(self.train, for_each = names))
            .err()
            .expect("rejected");
        assert!(
            err.to_string()
                .contains("unknown `next!` argument `for_each`")
        );
    }

    #[test]
    fn next_args_needs_a_self_field() {
        for tokens in [
            quote::quote!(train),
            quote::quote!(self.0),
            quote::quote!(other.train),
        ] {
            let err = next_args(tokens).err().expect("rejected");
            assert!(err.to_string().contains("expected `self.<step>`"));
        }
    }
}
