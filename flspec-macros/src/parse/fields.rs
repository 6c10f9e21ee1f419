//! Which fields of the flow state a step body reads and writes, as far as its syntax shows.
//!
//! `validate::fields` checks the reads against what the transitions into the step carry. The
//! check must never reject a correct flow, so this pass records a read only where it is sure
//! it is one, and a write wherever one may happen:
//! - a read is `self.f` (or `input.f` on an input of a join) used as a value: `self.f + 1`,
//!   `self.f.clone()`, `&self.f`, `self.f[0]`, `self.f.g`;
//! - a write is `self.f = ..`, `self.f += ..`, `&mut self.f`, or a method call on `self.f`
//!   that is not known to only read (`self.f.push(..)`);
//! - `self` used other than as `self.f` (`self.helper()`, `Self::f(self)`, `*self`) may write
//!   anything; so may a macro call (other than `next!`) whose arguments do not parse as
//!   expressions and that names `self`. Inside macro calls reads are not recorded.
//!
//! An input of a join is a name bound, in the body, to one element of the join's `Inputs`: the
//! closure parameter of an iterator adapter over `inputs.iter()` (`map`, `filter`, `for_each`,
//! `fold`, ...), the pattern of `for i in &inputs`, `let i = inputs.get(..).unwrap()`,
//! `if let Some(i) = inputs.get(..)`. Direct forms count too: `inputs.as_slice()[0].f`,
//! `inputs.get("a").unwrap().f`. Shadowing is followed lexically.

use syn::punctuated::Punctuated;
use syn::{Block, Expr, Ident, Member, Pat, Stmt, Token};

use crate::model::FieldUses;

/// Methods that only read their receiver (or consume a copy of it): a call on `self.f` is a
/// read of `f`. Any other method may write.
const READ_ONLY_METHODS: &[&str] = &[
    "clone",
    "len",
    "is_empty",
    "iter",
    "as_ref",
    "as_deref",
    "as_slice",
    "as_str",
    "to_vec",
    "to_owned",
    "to_string",
    "first",
    "last",
    "get",
    "contains",
    "contains_key",
    "is_some",
    "is_none",
    "keys",
    "values",
    "copied",
    "cloned",
    "abs",
    "sqrt",
    "powi",
    "powf",
    "min",
    "max",
    "eq",
    "partial_cmp",
    "cmp",
];

/// Iterator adapters whose output yields the same items as their input.
const SAME_ITEMS: &[&str] = &[
    "filter",
    "skip",
    "take",
    "rev",
    "skip_while",
    "take_while",
    "step_by",
    "inspect",
    "by_ref",
    "peekable",
];

/// Iterator methods whose closure gets one item as its first parameter.
const ITEM_CLOSURES: &[&str] = &[
    "map",
    "filter",
    "for_each",
    "filter_map",
    "flat_map",
    "any",
    "all",
    "find",
    "find_map",
    "position",
    "inspect",
    "take_while",
    "skip_while",
    "map_while",
    "max_by_key",
    "min_by_key",
    "partition",
    "try_for_each",
];

/// Iterator methods whose closure gets the accumulator, then one item.
const FOLD_CLOSURES: &[&str] = &["fold", "try_fold"];

/// The name of the step's `Inputs<Self>` parameter, if it has one and it is a plain name.
pub fn inputs_name(sig: &syn::Signature) -> Option<Ident> {
    param_of_type(sig, "Inputs")
}

/// The name of a folding join's `Input<Self>` parameter, if it has one and it is a plain name.
pub fn input_name(sig: &syn::Signature) -> Option<Ident> {
    param_of_type(sig, "Input")
}

/// The name of the parameter whose type's last segment is `ty`, if it is a plain name.
fn param_of_type(sig: &syn::Signature, ty: &str) -> Option<Ident> {
    sig.inputs.iter().find_map(|arg| {
        let syn::FnArg::Typed(t) = arg else {
            return None;
        };
        let syn::Type::Path(p) = &*t.ty else {
            return None;
        };
        if p.path.segments.last()?.ident != ty {
            return None;
        }
        match &*t.pat {
            Pat::Ident(i) => Some(i.ident.clone()),
            _ => None,
        }
    })
}

/// The field uses of a step body; `inputs` names the join's `Inputs` parameter, `input` a
/// folding join's `Input` parameter (one input, bound for the whole body).
pub fn field_uses(body: &Block, inputs: Option<&Ident>, input: Option<&Ident>) -> FieldUses {
    let mut v = Uses {
        out: FieldUses::default(),
        inputs: inputs.map(ToString::to_string),
        scope: input.map(|i| (i.to_string(), true)).into_iter().collect(),
        in_macro: false,
    };
    v.block(body);
    v.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// What an expression is, for the inputs of a join.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InputKind {
    /// Not related to the inputs (as far as the macro sees).
    None,
    /// One input.
    One,
    /// An `Option` of one input (`inputs.get(..)`).
    Maybe,
    /// An iterator (or collection) of inputs; `true` once `enumerate`d (items are `(i, input)`).
    Many(bool),
}

struct Uses {
    out: FieldUses,
    /// The `Inputs` parameter's name.
    inputs: Option<String>,
    /// Names bound in the body, innermost last: `true` for a binding to one input.
    scope: Vec<(String, bool)>,
    /// Inside a macro call's arguments: writes count, reads are not recorded.
    in_macro: bool,
}

impl Uses {
    fn is_self(e: &Expr) -> bool {
        matches!(e, Expr::Path(p) if p.qself.is_none() && p.path.is_ident("self"))
    }

    fn lookup(&self, name: &str) -> Option<bool> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, is_input)| *is_input)
    }

    /// Whether `e` names the `Inputs` parameter (not shadowed).
    fn is_inputs_param(&self, e: &Expr) -> bool {
        match e {
            Expr::Path(p) if p.qself.is_none() => match (p.path.get_ident(), &self.inputs) {
                (Some(id), Some(inputs)) => *id == inputs && self.lookup(inputs).is_none(),
                _ => false,
            },
            Expr::Paren(p) => self.is_inputs_param(&p.expr),
            Expr::Reference(r) => self.is_inputs_param(&r.expr),
            _ => false,
        }
    }

    fn input_kind(&self, e: &Expr) -> InputKind {
        match e {
            Expr::Path(p) if p.qself.is_none() => {
                if self.is_inputs_param(e) {
                    return InputKind::Many(false);
                }
                match p.path.get_ident() {
                    Some(id) if self.lookup(&id.to_string()) == Some(true) => InputKind::One,
                    _ => InputKind::None,
                }
            }
            Expr::Paren(p) => self.input_kind(&p.expr),
            Expr::Reference(r) => self.input_kind(&r.expr),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => {
                match self.input_kind(&u.expr) {
                    InputKind::One => InputKind::One,
                    _ => InputKind::None,
                }
            }
            Expr::Try(t) => match self.input_kind(&t.expr) {
                InputKind::Maybe => InputKind::One,
                _ => InputKind::None,
            },
            Expr::Index(ix) => match self.input_kind(&ix.expr) {
                InputKind::Many(false) => {
                    if matches!(&*ix.index, Expr::Range(_)) {
                        InputKind::Many(false)
                    } else {
                        InputKind::One
                    }
                }
                _ => InputKind::None,
            },
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                match (self.input_kind(&m.receiver), name.as_str()) {
                    (InputKind::Many(false), "iter" | "into_iter" | "as_slice" | "into_vec") => {
                        InputKind::Many(false)
                    }
                    (InputKind::Many(false), "enumerate") => InputKind::Many(true),
                    (InputKind::Many(e), n) if SAME_ITEMS.contains(&n) => InputKind::Many(e),
                    (InputKind::Many(false), "get" | "first" | "last" | "next" | "nth")
                    | (InputKind::Many(false), "find" | "max_by_key" | "min_by_key") => {
                        InputKind::Maybe
                    }
                    (InputKind::Maybe, "unwrap" | "expect") => InputKind::One,
                    (InputKind::One, "state" | "deref" | "as_ref") => InputKind::One,
                    _ => InputKind::None,
                }
            }
            _ => InputKind::None,
        }
    }

    fn block(&mut self, b: &Block) {
        let depth = self.scope.len();
        for s in &b.stmts {
            self.stmt(s);
        }
        self.scope.truncate(depth);
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Local(l) => {
                let kind = match &l.init {
                    Some(init) => {
                        self.expr(&init.expr, Access::Read);
                        if let Some((_, diverge)) = &init.diverge {
                            self.expr(diverge, Access::Read);
                        }
                        self.input_kind(&init.expr)
                    }
                    None => InputKind::None,
                };
                self.bind(&l.pat, kind);
            }
            Stmt::Item(_) => {}
            Stmt::Expr(e, _) => self.expr(e, Access::Read),
            Stmt::Macro(m) => self.mac(&m.mac),
        }
    }

    /// Binds the names of a pattern whose value is of `kind`.
    fn bind(&mut self, pat: &Pat, kind: InputKind) {
        match (pat, kind) {
            (Pat::Ident(i), InputKind::One) if i.subpat.is_none() => {
                self.scope.push((i.ident.to_string(), true));
            }
            (Pat::TupleStruct(ts), InputKind::Maybe)
                if ts.path.is_ident("Some") && ts.elems.len() == 1 =>
            {
                self.bind(&ts.elems[0], InputKind::One);
            }
            (Pat::Tuple(t), InputKind::Many(true)) if t.elems.len() == 2 => {
                self.bind(&t.elems[0], InputKind::None);
                self.bind(&t.elems[1], InputKind::One);
            }
            (Pat::Type(t), k) => self.bind(&t.pat, k),
            (Pat::Reference(r), InputKind::One) => self.bind(&r.pat, InputKind::One),
            _ => {
                let mut names = Vec::new();
                pat_names(pat, &mut names);
                for n in names {
                    self.scope.push((n, false));
                }
            }
        }
    }

    /// The item kind of an iterator of `kind`.
    fn item_of(kind: InputKind) -> InputKind {
        match kind {
            InputKind::Many(false) => InputKind::One,
            InputKind::Many(true) => InputKind::Many(true),
            _ => InputKind::None,
        }
    }

    fn mac(&mut self, mac: &syn::Macro) {
        if super::is_next_macro(mac) {
            return;
        }
        let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
        match syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            Ok(args) => {
                let outer = self.in_macro;
                self.in_macro = true;
                for a in &args {
                    self.expr(a, Access::Read);
                }
                self.in_macro = outer;
            }
            Err(_) => {
                let mut names = Vec::new();
                token_idents(mac.tokens.clone(), &mut names);
                if names.iter().any(|n| n == "self") {
                    self.out.self_escapes = true;
                }
                if names.iter().any(|n| {
                    self.lookup(n) == Some(true)
                        || (self.inputs.as_deref() == Some(n.as_str()) && self.lookup(n).is_none())
                }) {
                    self.out.input_escapes = true;
                }
            }
        }
    }

    /// A field access `base.member` used as `access`.
    fn field(&mut self, base: &Expr, member: &Member, access: Access) {
        let Member::Named(name) = member else {
            self.expr(base, access);
            return;
        };
        if Self::is_self(strip_parens(base)) {
            match access {
                Access::Write => self.out.self_writes.push(name.to_string()),
                Access::Read if !self.in_macro => self.out.self_reads.push(name.clone()),
                Access::Read => {}
            }
            return;
        }
        if self.input_kind(base) == InputKind::One {
            match access {
                Access::Write => self.out.input_writes.push(name.to_string()),
                Access::Read if !self.in_macro => self.out.input_reads.push(name.clone()),
                Access::Read => {}
            }
            // The base may hold other reads (`inputs.get(&self.key)`).
            self.expr(base, Access::Read);
            return;
        }
        self.expr(base, access);
    }

    fn expr(&mut self, e: &Expr, access: Access) {
        match e {
            Expr::Field(f) => self.field(&f.base, &f.member, access),
            Expr::Path(p) if p.qself.is_none() => {
                if Self::is_self(e) {
                    self.out.self_escapes = true;
                } else if let Some(id) = p.path.get_ident() {
                    let n = id.to_string();
                    let is_input = self.lookup(&n) == Some(true);
                    if access == Access::Write && (is_input || self.is_inputs_param(e)) {
                        self.out.input_escapes = true;
                    }
                }
            }
            Expr::Assign(a) => {
                self.expr(&a.left, Access::Write);
                self.expr(&a.right, Access::Read);
            }
            Expr::Binary(b) if is_compound_assign(&b.op) => {
                self.expr(&b.left, Access::Write);
                self.expr(&b.right, Access::Read);
            }
            Expr::Reference(r) => {
                let a = if r.mutability.is_some() {
                    Access::Write
                } else {
                    access
                };
                self.expr(&r.expr, a);
            }
            Expr::Index(ix) => {
                self.expr(&ix.expr, access);
                self.expr(&ix.index, Access::Read);
            }
            Expr::Paren(p) => self.expr(&p.expr, access),
            Expr::Group(g) => self.expr(&g.expr, access),
            Expr::MethodCall(m) => self.method_call(m),
            Expr::Closure(c) => {
                let depth = self.scope.len();
                for p in &c.inputs {
                    self.bind(p, InputKind::None);
                }
                self.expr(&c.body, Access::Read);
                self.scope.truncate(depth);
            }
            Expr::ForLoop(f) => {
                self.expr(&f.expr, Access::Read);
                let kind = Self::item_of(self.input_kind(&f.expr));
                let depth = self.scope.len();
                self.bind(&f.pat, kind);
                self.block(&f.body);
                self.scope.truncate(depth);
            }
            Expr::Let(l) => {
                // `if let` / `while let`: the bindings are visible in the branch; binding them
                // for the rest of the enclosing block only hides more (never reports more).
                self.expr(&l.expr, Access::Read);
                let kind = self.input_kind(&l.expr);
                self.bind(&l.pat, kind);
            }
            Expr::If(i) => {
                let depth = self.scope.len();
                self.expr(&i.cond, Access::Read);
                self.block(&i.then_branch);
                self.scope.truncate(depth);
                if let Some((_, e)) = &i.else_branch {
                    self.expr(e, Access::Read);
                }
            }
            Expr::While(w) => {
                let depth = self.scope.len();
                self.expr(&w.cond, Access::Read);
                self.block(&w.body);
                self.scope.truncate(depth);
            }
            Expr::Match(m) => {
                self.expr(&m.expr, Access::Read);
                // `match inputs.get("a") { Some(i) => i.loss, None => .. }`
                let kind = self.input_kind(&m.expr);
                for arm in &m.arms {
                    let depth = self.scope.len();
                    self.bind(&arm.pat, kind);
                    if let Some((_, g)) = &arm.guard {
                        self.expr(g, Access::Read);
                    }
                    self.expr(&arm.body, Access::Read);
                    self.scope.truncate(depth);
                }
            }
            Expr::Block(b) => self.block(&b.block),
            Expr::Unsafe(u) => self.block(&u.block),
            Expr::Loop(l) => self.block(&l.body),
            Expr::Const(c) => self.block(&c.block),
            Expr::Macro(m) => self.mac(&m.mac),
            Expr::Async(_) => {
                // An async block is a step only in name; say nothing about it.
                self.out.self_escapes = true;
                self.out.input_escapes = true;
            }
            other => {
                // Every other expression uses its sub-expressions as it is used: a tuple
                // assigned to (`(a, self.f) = pair`) writes, a sum reads.
                let mut sub = SubExprs(Vec::new());
                syn::visit::visit_expr(&mut sub, other);
                for s in sub.0 {
                    self.expr(s, access);
                }
            }
        }
    }

    fn method_call(&mut self, m: &syn::ExprMethodCall) {
        let name = m.method.to_string();
        let recv_kind = self.input_kind(&m.receiver);
        let read_only = READ_ONLY_METHODS.contains(&name.as_str());
        // The receiver: `self.f.len()` reads `f`, `self.f.push(..)` may write it.
        if Self::is_self(strip_parens(&m.receiver)) {
            self.out.self_escapes = true;
        } else if recv_kind == InputKind::One {
            if !matches!(name.as_str(), "name" | "state" | "clone" | "into_parts") {
                self.out.input_escapes = true;
            }
        } else if matches!(recv_kind, InputKind::Many(_) | InputKind::Maybe) {
            // Iterating over the inputs or looking one up writes nothing.
            self.expr(&m.receiver, Access::Read);
        } else {
            let a = if read_only {
                Access::Read
            } else {
                Access::Write
            };
            self.expr(&m.receiver, a);
        }
        // Closures over an iterator of inputs see one input (or `(i, input)`) per call.
        let item = Self::item_of(recv_kind);
        for (i, arg) in m.args.iter().enumerate() {
            match strip_parens(arg) {
                Expr::Closure(c) if item != InputKind::None => {
                    let slot = if FOLD_CLOSURES.contains(&name.as_str()) {
                        Some(1)
                    } else if ITEM_CLOSURES.contains(&name.as_str()) && i == 0 {
                        Some(0)
                    } else {
                        None
                    };
                    let depth = self.scope.len();
                    for (j, p) in c.inputs.iter().enumerate() {
                        let kind = if Some(j) == slot {
                            item
                        } else {
                            InputKind::None
                        };
                        self.bind(p, kind);
                    }
                    self.expr(&c.body, Access::Read);
                    self.scope.truncate(depth);
                }
                other => self.expr(other, Access::Read),
            }
        }
    }
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        Expr::Group(g) => strip_parens(&g.expr),
        _ => e,
    }
}

fn is_compound_assign(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

/// The direct sub-expressions of an expression (not their own sub-expressions).
struct SubExprs<'a>(Vec<&'a Expr>);

impl<'a> syn::visit::Visit<'a> for SubExprs<'a> {
    fn visit_expr(&mut self, e: &'a Expr) {
        self.0.push(e);
    }
    fn visit_macro(&mut self, _: &'a syn::Macro) {}
}

/// Every name a pattern binds.
fn pat_names(pat: &Pat, out: &mut Vec<String>) {
    struct Names<'a>(&'a mut Vec<String>);
    impl<'ast> syn::visit::Visit<'ast> for Names<'_> {
        fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
            self.0.push(i.ident.to_string());
            syn::visit::visit_pat_ident(self, i);
        }
    }
    syn::visit::Visit::visit_pat(&mut Names(out), pat);
}

/// Every identifier in a token stream, nested groups included.
fn token_idents(tokens: proc_macro2::TokenStream, out: &mut Vec<String>) {
    for t in tokens {
        match t {
            proc_macro2::TokenTree::Ident(i) => out.push(i.to_string()),
            proc_macro2::TokenTree::Group(g) => token_idents(g.stream(), out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field_uses;
    use crate::model::FieldUses;

    fn uses(body: proc_macro2::TokenStream, inputs: bool) -> FieldUses {
        let block: syn::Block = syn::parse2(body).expect("a block");
        let name = syn::Ident::new("inputs", proc_macro2::Span::call_site());
        field_uses(&block, inputs.then_some(&name), None)
    }

    fn names(v: &[syn::Ident]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn self_reads_and_writes() {
        let u = uses(
            quote::quote!({
                self.a = self.b + 1.0;
                self.c += 1;
                self.d.push(self.e.len());
                let x = &mut self.f;
                let y = self.g.clone();
                assert_eq!(self.h, 0);
            }),
            false,
        );
        assert_eq!(names(&u.self_reads), ["b", "e", "g"]);
        assert_eq!(u.self_writes, ["a", "c", "d", "f"]);
        assert!(!u.self_escapes);
    }

    #[test]
    fn self_escapes_through_methods_and_paths() {
        assert!(
            uses(
                quote::quote!({
                    self.helper();
                }),
                false
            )
            .self_escapes
        );
        assert!(
            uses(
                quote::quote!({
                    Self::helper(self);
                }),
                false
            )
            .self_escapes
        );
        assert!(
            uses(
                quote::quote!({
                    *self = Self::default();
                }),
                false
            )
            .self_escapes
        );
        assert!(
            uses(
                quote::quote!({
                    my_macro!(self => x);
                }),
                false
            )
            .self_escapes
        );
        assert!(
            !uses(
                quote::quote!({
                    println!("{}", self.a);
                }),
                false
            )
            .self_escapes
        );
    }

    #[test]
    fn input_reads_in_every_form() {
        let u = uses(
            quote::quote!({
                let a: f32 = inputs.iter().map(|i| i.a).sum();
                for (k, i) in inputs.iter().enumerate() {
                    let _ = i.b;
                }
                for i in &inputs {
                    let _ = i.c;
                }
                let _ = inputs.as_slice()[0].d;
                let _ = inputs.get("x").unwrap().e;
                if let Some(i) = inputs.get("y") {
                    let _ = i.f;
                }
                let _ = inputs.iter().fold(0.0, |acc, i| acc + i.g);
                let _ = inputs.iter().filter(|i| i.h > 0.0).count();
                match inputs.get("z") {
                    Some(i) => i.j,
                    None => 0.0,
                };
            }),
            true,
        );
        assert_eq!(
            names(&u.input_reads),
            ["a", "b", "c", "d", "e", "f", "g", "h", "j"]
        );
        assert!(!u.input_escapes);
    }

    #[test]
    fn shadowed_and_unrelated_names_are_not_inputs() {
        let u = uses(
            quote::quote!({
                for i in &inputs {
                    let i = &other;
                    let _ = i.a;
                }
                let _ = self.items.iter().map(|i| i.b);
                let _ = inputs.iter().map(|i| i.model.clone()).map(|m| m.c);
                let inputs = vec![1];
                let _ = inputs.iter().map(|i| i.d);
            }),
            true,
        );
        assert_eq!(names(&u.input_reads), ["model"]);
    }
}
