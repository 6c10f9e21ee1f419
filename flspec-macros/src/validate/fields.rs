//! Reads of fields that never reach the step: a field a transition does not carry arrives with
//! its `Default` value, so reading it where no transition into the step carries a value is a
//! mistake (`inputs.iter().map(|i| i.loss)` after `include = [model]` sums zeros).
//!
//! Which fields hold a value at each step is a small dataflow over the graph:
//! - `start` and every join have all their fields (the aggregator keeps its whole state for a
//!   join; `start` gets the state the run began with);
//! - any other step has what its incoming transitions carry of what their source step has or
//!   sets: `carried(t) ∩ (has(from) ∪ sets(from))`, united over the transitions into it;
//! - a join's inputs have what the collaborator → join transitions carry, by the same rule.
//!
//! A read is an error only if the field reaches the step by no transition and the step itself
//! may set it (`parse::fields` errs towards "may set"): no correct flow is rejected.

use std::collections::BTreeSet;

use crate::ctxt::Ctxt;
use crate::model::{Fields, FlowDef, Step, Transition};

/// A set of fields, without knowing every field of the state: `AllBut(∅)` is all of them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FieldSet {
    AllBut(BTreeSet<String>),
    Only(BTreeSet<String>),
}

impl FieldSet {
    pub fn all() -> Self {
        FieldSet::AllBut(BTreeSet::new())
    }

    pub fn none() -> Self {
        FieldSet::Only(BTreeSet::new())
    }

    pub fn contains(&self, f: &str) -> bool {
        match self {
            FieldSet::AllBut(x) => !x.contains(f),
            FieldSet::Only(x) => x.contains(f),
        }
    }

    pub fn union(&self, other: &Self) -> Self {
        use FieldSet::*;
        match (self, other) {
            (Only(a), Only(b)) => Only(a.union(b).cloned().collect()),
            (AllBut(a), AllBut(b)) => AllBut(a.intersection(b).cloned().collect()),
            (Only(a), AllBut(b)) | (AllBut(b), Only(a)) => {
                AllBut(b.difference(a).cloned().collect())
            }
        }
    }

    pub fn intersect(&self, other: &Self) -> Self {
        use FieldSet::*;
        match (self, other) {
            (Only(a), Only(b)) => Only(a.intersection(b).cloned().collect()),
            (AllBut(a), AllBut(b)) => AllBut(a.union(b).cloned().collect()),
            (Only(a), AllBut(b)) | (AllBut(b), Only(a)) => Only(a.difference(b).cloned().collect()),
        }
    }
}

fn carried(t: &Transition) -> FieldSet {
    let names = |f: &[syn::Ident]| f.iter().map(ToString::to_string).collect();
    match &t.fields {
        Fields::All => FieldSet::all(),
        Fields::Exclude(f) => FieldSet::AllBut(names(f)),
        Fields::Include(f) => FieldSet::Only(names(f)),
    }
}

fn sets(step: &Step) -> FieldSet {
    if step.uses.self_escapes {
        FieldSet::all()
    } else {
        FieldSet::Only(step.uses.self_writes.iter().cloned().collect())
    }
}

/// Which fields hold a value when each step starts (by index in `def.steps`).
pub fn reaching(def: &FlowDef) -> Vec<FieldSet> {
    let index_of = |name: &syn::Ident| def.steps.iter().position(|s| s.ident == *name);
    let fixed = |s: &Step| s.ident == "start" || s.is_join();
    let mut has: Vec<FieldSet> = def
        .steps
        .iter()
        .map(|s| {
            if fixed(s) {
                FieldSet::all()
            } else {
                FieldSet::none()
            }
        })
        .collect();
    // Monotone over a finite lattice (the fields named in the flow): this ends.
    loop {
        let mut changed = false;
        for t in &def.transitions {
            let (Some(from), Some(to)) = (index_of(&t.from), index_of(&t.target)) else {
                continue;
            };
            if fixed(&def.steps[to]) {
                continue;
            }
            let avail = has[from].union(&sets(&def.steps[from]));
            let new = has[to].union(&carried(t).intersect(&avail));
            if new != has[to] {
                has[to] = new;
                changed = true;
            }
        }
        if !changed {
            return has;
        }
    }
}

pub fn check_field_reads(cx: &Ctxt, def: &FlowDef) {
    let has = reaching(def);
    let index_of = |name: &syn::Ident| def.steps.iter().position(|s| s.ident == *name);
    for (i, step) in def.steps.iter().enumerate() {
        let into: Vec<&Transition> = def
            .transitions
            .iter()
            .filter(|t| t.target == step.ident && index_of(&t.from).is_some())
            .collect();
        // `self` of a step other than `start` and the joins.
        if step.ident != "start" && !step.is_join() && !step.uses.self_escapes {
            let mut reported = Vec::new();
            for read in &step.uses.self_reads {
                let f = read.to_string();
                if has[i].contains(&f)
                    || step.uses.self_writes.contains(&f)
                    || reported.contains(&f)
                {
                    continue;
                }
                reported.push(f.clone());
                cx.error_spanned_by(
                    read,
                    format_args!(
                        "field `{f}` never reaches `{}`, so this reads its `Default` value: {}; carry it on a transition into `{}` or set it before reading it",
                        step.ident,
                        reasons(&into, &f),
                        step.ident,
                    ),
                );
            }
        }
        // The inputs of a join.
        if step.is_join() && !step.uses.input_escapes {
            // `validate` made every transition into a join come from a collaborator step.
            let from_collabs = &into;
            let mut inputs_have = FieldSet::none();
            for t in from_collabs {
                let from = index_of(&t.from).expect("filtered");
                let avail = has[from].union(&sets(&def.steps[from]));
                inputs_have = inputs_have.union(&carried(t).intersect(&avail));
            }
            let mut reported = Vec::new();
            for read in &step.uses.input_reads {
                let f = read.to_string();
                if inputs_have.contains(&f)
                    || step.uses.input_writes.contains(&f)
                    || reported.contains(&f)
                {
                    continue;
                }
                reported.push(f.clone());
                cx.error_spanned_by(
                    read,
                    format_args!(
                        "field `{f}` of the inputs never reaches `{}`, so this reads its `Default` value: {}; carry it on a transition into `{}` or remove the read",
                        step.ident,
                        reasons(from_collabs, &f),
                        step.ident,
                    ),
                );
            }
        }
    }
}

/// Why no transition in `into` brings `f`: one clause per transition.
fn reasons(into: &[&Transition], f: &str) -> String {
    if into.is_empty() {
        return "no transition leads into it".to_owned();
    }
    let clauses: Vec<String> = into
        .iter()
        .map(|t| {
            let edge = format!("`{} -> {}`", t.from, t.target);
            if !carried(t).contains(f) {
                let filter = match &t.fields {
                    Fields::Include(x) => format!(" (include = [{}])", list(x)),
                    Fields::Exclude(x) => format!(" (exclude = [{}])", list(x)),
                    Fields::All => String::new(),
                };
                format!("{edge}{filter} drops it")
            } else {
                format!(
                    "{edge} carries it, but `{}` never has a value of it",
                    t.from
                )
            }
        })
        .collect();
    clauses.join("; ")
}

fn list(fields: &[syn::Ident]) -> String {
    fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::FieldSet;

    fn only(v: &[&str]) -> FieldSet {
        FieldSet::Only(v.iter().map(ToString::to_string).collect())
    }
    fn all_but(v: &[&str]) -> FieldSet {
        FieldSet::AllBut(v.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn field_set_algebra() {
        assert_eq!(only(&["a"]).union(&only(&["b"])), only(&["a", "b"]));
        assert_eq!(
            all_but(&["a", "b"]).union(&all_but(&["b"])),
            all_but(&["b"])
        );
        assert_eq!(only(&["a"]).union(&all_but(&["a", "b"])), all_but(&["b"]));
        assert_eq!(only(&["a", "b"]).intersect(&all_but(&["b"])), only(&["a"]));
        assert_eq!(
            all_but(&["a"]).intersect(&all_but(&["b"])),
            all_but(&["a", "b"])
        );
        assert!(FieldSet::all().contains("x"));
        assert!(!FieldSet::none().contains("x"));
    }
}
