//! The graph rules, one small function each. Reads only the model; records every error.

use std::collections::{HashMap, VecDeque};

use crate::ctxt::Ctxt;
use crate::model::{FlowDef, Role, Step, Transition};

mod fields;

pub fn check(cx: &Ctxt, def: &FlowDef) {
    check_duplicate_steps(cx, def);
    check_names_shadowing_flow_methods(cx, def);
    check_start_and_end(cx, def);
    check_variant_names(cx, def);
    let index = step_index(def);
    for t in &def.transitions {
        check_transition(cx, def, &index, t);
    }
    check_steps_have_transitions(cx, def);
    check_reachable(cx, def, &index);
    check_resume_points(cx, def, &index);
    // On a broken graph the dataflow would follow edges that are not there: only a graph
    // without mistakes gets its field reads checked.
    if !cx.has_errors() {
        fields::check_field_reads(cx, def);
    }
}

fn step_index(def: &FlowDef) -> HashMap<String, usize> {
    let mut index = HashMap::new();
    for (i, s) in def.steps.iter().enumerate() {
        index.entry(s.ident.to_string()).or_insert(i);
    }
    index
}

fn step_list(def: &FlowDef) -> String {
    def.steps
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_duplicate_steps(cx: &Ctxt, def: &FlowDef) {
    for (i, s) in def.steps.iter().enumerate() {
        if def.steps[..i].iter().any(|p| p.ident == s.ident) {
            cx.error_spanned_by(
                &s.ident,
                format_args!("duplicate step `{}`; step names must be unique", s.ident),
            );
        }
    }
}

/// The methods of `flspec::Flow` that a method of the same name in the flow's impl would hide:
/// `flow.run(&runtime)` would call a step named `run`, and `Demo::graph()` a step named `graph`.
const FLOW_METHODS: &[&str] = &[
    "run",
    "graph",
    "run_aggregator_step",
    "run_collaborator_step",
    "filter_in_place",
    "take_addressed",
    "give_addressed",
    "filtered_clone",
];

fn check_names_shadowing_flow_methods(cx: &Ctxt, def: &FlowDef) {
    let methods = def.steps.iter().map(|s| &s.ident).chain(&def.helpers);
    for ident in methods {
        let name = ident.to_string();
        if FLOW_METHODS.contains(&name.as_str()) {
            cx.error_spanned_by(
                ident,
                format_args!(
                    "a method named `{name}` hides `flspec::Flow::{name}` (`{flow}::{name}(..)` and \
                     `flow.{name}(..)` would call this method instead); rename it",
                    flow = def.name
                ),
            );
        }
    }
}

fn check_start_and_end(cx: &Ctxt, def: &FlowDef) {
    for (name, what) in [("start", "first"), ("end", "last")] {
        match def.steps.iter().find(|s| s.ident == name) {
            None if let Some(helper) = def.helpers.iter().find(|h| *h == name) => cx
                .error_spanned_by(
                    helper,
                    format_args!(
                        "`{name}` has no role attribute, so it is a helper method, not the {what} step; mark it `#[aggregator]`: the {what} step of every flow runs on the aggregator"
                    ),
                ),
            None => cx.error_spanned_by(
                &def.self_ty,
                format_args!(
                    "flow `{}` has no `{name}` step; add an `#[aggregator] fn {name}(&mut self)`, the {what} step of every flow",
                    def.name
                ),
            ),
            Some(s) if s.role != Role::Aggregator => cx.error_spanned_by(
                &s.role_attr,
                format_args!(
                    "`{name}` is the {what} step of the flow and runs on the aggregator; mark it `#[aggregator]`"
                ),
            ),
            Some(s) if s.is_fold() => cx.error_spanned_by(
                &s.ident,
                format_args!("`{name}` cannot be a folding join; remove its `Input` parameter"),
            ),
            Some(s) if s.is_join() => cx.error_spanned_by(
                &s.ident,
                format_args!("`{name}` cannot be a join; remove its `Inputs` parameter"),
            ),
            Some(_) => {}
        }
    }
}

fn check_variant_names(cx: &Ctxt, def: &FlowDef) {
    for (i, s) in def.steps.iter().enumerate() {
        let v = crate::expand::variant_name(&s.ident);
        if let Some(p) = def.steps[..i]
            .iter()
            .find(|p| p.ident != s.ident && crate::expand::variant_name(&p.ident) == v)
        {
            cx.error_spanned_by(
                &s.ident,
                format_args!(
                    "steps `{}` and `{}` both become the variant `{v}` of the step enum; rename one",
                    p.ident, s.ident
                ),
            );
        }
    }
}

fn check_transition(cx: &Ctxt, def: &FlowDef, index: &HashMap<String, usize>, t: &Transition) {
    let Some(&from_i) = index.get(&t.from.to_string()) else {
        return;
    };
    let from = &def.steps[from_i];
    let Some(&to_i) = index.get(&t.target.to_string()) else {
        unknown_target(cx, def, t);
        return;
    };
    let to = &def.steps[to_i];
    if from.ident == "end" {
        cx.error_spanned_by(
            &t.target,
            "`end` is the last step and cannot call `next!`; remove the call",
        );
    }
    if from.is_fold()
        && let Some(foreach) = &t.foreach
    {
        cx.error_spanned_by(
            foreach,
            format_args!(
                "folding join `{}` runs once per input and cannot fan out; go on to an aggregator step (`next!(self.<step>)`) that fans out to `{}`",
                from.ident, to.ident
            ),
        );
    }
    match (from.role, to.role, t.foreach.is_some()) {
        (Role::Collaborator, _, true) => cx.error_spanned_by(
            t.foreach.as_ref().expect("checked"),
            format_args!(
                "only aggregator steps can fan out, but `{}` is a collaborator step; remove `foreach` or fan out from the join",
                from.ident
            ),
        ),
        (Role::Aggregator, Role::Aggregator, true) => cx.error_spanned_by(
            &t.target,
            format_args!(
                "`foreach` must target a collaborator step, but `{}` is an aggregator step; continue with `next!(self.{})`",
                to.ident, to.ident
            ),
        ),
        (Role::Aggregator, Role::Collaborator, false) => cx.error_spanned_by(
            &t.target,
            format_args!(
                "aggregator step `{}` moves to collaborator step `{}` without a fan-out; write `next!(self.{}, foreach = ctx.collaborators())` or name a subset",
                from.ident, to.ident, to.ident
            ),
        ),
        (Role::Aggregator, Role::Aggregator, false) if to.is_join() => cx.error_spanned_by(
            &t.target,
            format_args!(
                "join `{}` is reached from aggregator step `{}` without a fan-out; a join takes the inputs of collaborators: fan out first with `foreach`",
                to.ident, from.ident
            ),
        ),
        (Role::Collaborator, Role::Aggregator, _) if !to.is_join() => cx.error_spanned_by(
            &t.target,
            format_args!(
                "collaborator step `{}` returns to aggregator step `{}`, which is not a join; give `{}` an `inputs: Inputs<Self>` parameter (or `input: Input<Self>` to fold the inputs one at a time) or return through a join",
                from.ident, to.ident, to.ident
            ),
        ),
        _ => {}
    }
}

fn unknown_target(cx: &Ctxt, def: &FlowDef, t: &Transition) {
    if t.target == "start" || t.target == "end" {
        // `check_start_and_end` reported the missing step.
        return;
    }
    if def.helpers.contains(&t.target) {
        if def.transitions.iter().any(|u| u.from == t.target) {
            // The helper calls `next!`: `parse` already said to give it a role.
            return;
        }
        cx.error_spanned_by(
            &t.target,
            format_args!(
                "`{}` is not a step: mark it `#[aggregator]` or `#[collaborator]`",
                t.target
            ),
        );
    } else {
        cx.error_spanned_by(
            &t.target,
            format_args!(
                "unknown step `{}`; steps in this flow: {}",
                t.target,
                step_list(def)
            ),
        );
    }
}

fn check_steps_have_transitions(cx: &Ctxt, def: &FlowDef) {
    for s in &def.steps {
        if s.ident != "end" && s.next_calls == 0 {
            cx.error_spanned_by(
                &s.ident,
                format_args!(
                    "step `{}` never calls `next!`; every step but `end` must say where the flow goes",
                    s.ident
                ),
            );
        }
    }
}

/// `resume_from` lists aggregator steps other than `end`: a run resumes on the aggregator, after
/// a step that has a transition to take.
fn check_resume_points(cx: &Ctxt, def: &FlowDef, index: &HashMap<String, usize>) {
    for ident in &def.resume_from {
        let Some(&i) = index.get(&ident.to_string()) else {
            cx.error_spanned_by(
                ident,
                format_args!(
                    "`{ident}` in `resume_from` is not a step of flow `{}`; list aggregator steps (steps: {})",
                    def.name,
                    step_list(def)
                ),
            );
            continue;
        };
        let step = &def.steps[i];
        if step.role != Role::Aggregator {
            cx.error_spanned_by(
                ident,
                format_args!(
                    "`{ident}` is a collaborator step; a run resumes on the aggregator, so `resume_from` lists aggregator steps only"
                ),
            );
        } else if *ident == "end" {
            cx.error_spanned_by(
                ident,
                "`end` finishes the run: nothing resumes after it; list the steps a resumed run may start over after",
            );
        }
    }
}

fn check_reachable(cx: &Ctxt, def: &FlowDef, index: &HashMap<String, usize>) {
    let Some(&start) = index.get("start") else {
        return;
    };
    let mut seen = vec![false; def.steps.len()];
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    // Whether a reachable step has an exit the graph does not know (a `next!` that did not
    // parse, an unknown target) or none at all. Then the steps after it look unreachable only
    // because of that mistake, which is reported on its own: say nothing more.
    let mut incomplete = false;
    while let Some(i) = queue.pop_front() {
        let from: &Step = &def.steps[i];
        let mut known = 0;
        for t in def.transitions.iter().filter(|t| t.from == from.ident) {
            known += 1;
            match index.get(&t.target.to_string()) {
                Some(&j) if !seen[j] => {
                    seen[j] = true;
                    queue.push_back(j);
                }
                Some(_) => {}
                None => incomplete = true,
            }
        }
        if known < from.next_calls || (from.next_calls == 0 && from.ident != "end") {
            incomplete = true;
        }
    }
    if incomplete {
        return;
    }
    for (i, s) in def.steps.iter().enumerate() {
        if !seen[i] && index.get(&s.ident.to_string()) == Some(&i) {
            cx.error_spanned_by(
                &s.ident,
                format_args!(
                    "step `{}` is unreachable from `start`; call `next!(self.{})` from a step or remove it",
                    s.ident, s.ident
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ctxt::Ctxt;
    use crate::{parse, validate};

    /// The messages `#[flow]` reports for an impl block, in order.
    fn errors(item: proc_macro2::TokenStream) -> Vec<String> {
        let cx = Ctxt::new();
        let args = parse::flow_args(&cx, proc_macro2::TokenStream::new());
        let mut item: syn::ItemImpl = syn::parse2(item).expect("an impl block");
        if let Some(def) = parse::flow_def(&cx, args, &mut item) {
            validate::check(&cx, &def);
        }
        match cx.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_flow_has_no_errors() {
        let errs = errors(quote::quote! {
            impl F {
                #[aggregator]
                fn start(&mut self, ctx: &Ctx) -> Next<Self> { next!(self.a, foreach = ctx.collaborators()) }
                #[collaborator]
                fn a(&mut self) -> Next<Self> { next!(self.join) }
                #[aggregator]
                fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
                    if inputs.is_empty() { next!(self.end) } else { next!(self.a, foreach = inputs.names()) }
                }
                #[aggregator]
                fn end(&mut self) {}
            }
        });
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn an_unknown_target_is_reported_once() {
        let errs = errors(quote::quote! {
            impl F {
                #[aggregator]
                fn start(&mut self) -> Next<Self> { next!(self.middle) }
                #[aggregator]
                fn middle(&mut self) -> Next<Self> { next!(self.edn) }
                #[aggregator]
                fn end(&mut self) {}
            }
        });
        assert_eq!(
            errs,
            ["unknown step `edn`; steps in this flow: start, middle, end"],
            "no `end is unreachable` on top"
        );
    }

    #[test]
    fn unreachable_steps_are_reported_when_the_graph_is_whole() {
        let errs = errors(quote::quote! {
            impl F {
                #[aggregator]
                fn start(&mut self) -> Next<Self> { next!(self.end) }
                #[aggregator]
                fn orphan(&mut self) -> Next<Self> { next!(self.end) }
                #[aggregator]
                fn end(&mut self) {}
            }
        });
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("step `orphan` is unreachable from `start`"));
    }

    #[test]
    fn every_mistake_is_reported() {
        let errs = errors(quote::quote! {
            impl F {
                #[aggregator]
                fn start(&mut self) -> Next<Self> { next!(self.a) }
                #[collaborator]
                fn a(&mut self, inputs: Inputs<Self>) -> Next<Self> { next!(self.b) }
                #[aggregator]
                fn b(&mut self) -> Next<Self> { next!(self.end) }
            }
        });
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with("a collaborator step cannot take `Inputs`"));
        assert!(errs[1].starts_with("flow `F` has no `end` step"));
        assert!(errs[2].starts_with("aggregator step `start` moves to collaborator step `a`"));
        assert!(errs[3].starts_with("collaborator step `a` returns to aggregator step `b`"));
    }
}
