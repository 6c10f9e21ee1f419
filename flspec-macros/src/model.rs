//! The model of a flow, as parsed from its `impl` block. Every node keeps the user's tokens so
//! that errors and generated code point at them.

use proc_macro2::TokenStream;
use syn::{Expr, Ident, Type};

/// A whole flow.
pub struct FlowDef {
    /// The flow state type (`impl X`).
    pub self_ty: Type,
    /// The flow's name: the last segment of the self type.
    pub name: Ident,
    /// `#[flow(collaborator = T)]`.
    pub collaborator_ty: Option<Type>,
    /// `#[flow(aggregator = T)]`.
    pub aggregator_ty: Option<Type>,
    /// `#[flow(tolerate_dropouts)]`.
    pub tolerate_dropouts: bool,
    /// `#[flow(addressed = [..])]`: fields of which each collaborator receives its own entry.
    pub addressed: Vec<Ident>,
    /// `#[flow(resume_from = [..])]`: the aggregator steps a resumed run may restart after.
    pub resume_from: Vec<Ident>,
    /// The steps, in source order.
    pub steps: Vec<Step>,
    /// Every `next!` call, in source order; a transition's index is its id.
    pub transitions: Vec<Transition>,
    /// Methods without a role attribute (helpers), by name, for error messages.
    pub helpers: Vec<Ident>,
}

/// The role attribute of a step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Aggregator,
    Collaborator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Aggregator => "aggregator",
            Role::Collaborator => "collaborator",
        }
    }
}

/// A step method.
pub struct Step {
    pub ident: Ident,
    pub role: Role,
    /// The role attribute, as written (`#[aggregator]`), for errors about the role.
    pub role_attr: TokenStream,
    pub params: Vec<Param>,
    /// How many `next!` calls the body holds, including those whose arguments did not parse.
    pub next_calls: usize,
    /// The fields of the flow state the body reads and writes, as far as the macro sees.
    pub uses: FieldUses,
}

/// What a step body does with fields, as far as its syntax shows (`parse::fields`).
#[derive(Default)]
pub struct FieldUses {
    /// `self.f` read, in source order, with the user's span.
    pub self_reads: Vec<Ident>,
    /// `self.f` the body may write (assigned, borrowed mutably, called a method on).
    pub self_writes: Vec<String>,
    /// Whether `self` itself escapes (`self.helper()`, `Self::f(self)`, `&mut *self`, a macro
    /// the macro cannot read): the body may then write any field.
    pub self_escapes: bool,
    /// In a join, `input.f` read on one of its inputs, with the user's span.
    pub input_reads: Vec<Ident>,
    /// In a join, input fields the body may write.
    pub input_writes: Vec<String>,
    /// In a join, whether an input escapes to code that may write any of its fields.
    pub input_escapes: bool,
}

impl Step {
    /// A join: it takes the inputs of a fan-out, all at once (`Inputs<Self>`) or one at a time
    /// (a folding join, `Input<Self>`).
    pub fn is_join(&self) -> bool {
        self.params
            .iter()
            .any(|p| matches!(p.kind, ParamKind::Inputs | ParamKind::Input))
    }

    /// A folding join (`input: Input<Self>`): it runs once per arrival.
    pub fn is_fold(&self) -> bool {
        self.params.iter().any(|p| p.kind == ParamKind::Input)
    }
}

/// What a step parameter asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParamKind {
    /// `ctx: &Ctx`.
    Ctx,
    /// `inputs: Inputs<Self>`: the step is a join.
    Inputs,
    /// `input: Input<Self>`: the step is a folding join, run once per arrival.
    Input,
    /// `&mut C` with `C` the collaborator's private state.
    CollaboratorPrivate,
    /// `&mut A` with `A` the aggregator's private state.
    AggregatorPrivate,
}

/// One parameter of a step.
pub struct Param {
    pub kind: ParamKind,
}

/// Which fields a transition carries.
pub enum Fields {
    All,
    Exclude(Vec<Ident>),
    Include(Vec<Ident>),
}

/// One `next!` call.
pub struct Transition {
    /// The step whose body holds the call.
    pub from: Ident,
    /// The target step, `self.<target>`.
    pub target: Ident,
    /// `foreach = <expr>`.
    pub foreach: Option<Expr>,
    pub fields: Fields,
}
