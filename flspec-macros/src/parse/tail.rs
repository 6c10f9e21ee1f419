//! Which `next!` calls of a step body are its result.
//!
//! A `next!` builds the transition a step returns; one whose value is dropped (a second call in
//! sequence, `let _ = next!(..)`, a call in a discarded `if`) would still add an edge to the graph
//! and its fingerprint while the flow never takes it. A `next!` is in result position when it is:
//! - the tail expression of the body;
//! - the tail of an `if`/`else` branch, a `match` arm, a block, `unsafe` block or parentheses
//!   that are themselves in result position;
//! - the argument of `Ok(..)` (also `Ok::<_, _>(..)`, `Result::Ok(..)`) in result position;
//! - the value of a `return` (anywhere in the body, outside closures and nested items), or of a
//!   `break` out of a `loop` in result position.
//!
//! Macro calls are numbered in the order `syn`'s visitors meet them, which is the order in which
//! [`super::NextRewriter`] rewrites them.

use std::collections::HashSet;

use syn::visit::Visit;
use syn::{Block, Expr, Macro, Stmt};

use super::is_next_macro;

/// The ordinals (in visiting order) of the `next!` calls of `body` that are in result position.
pub fn result_nexts(body: &Block) -> HashSet<usize> {
    let mut ordinals = Ordinals::default();
    ordinals.visit_block(body);
    let mut tails = Tails::default();
    tails.block(body);
    let mut returns = Returns { tails: &mut tails };
    returns.visit_block(body);
    ordinals
        .order
        .iter()
        .enumerate()
        .filter(|(_, m)| tails.allowed.contains(m))
        .map(|(i, _)| i)
        .collect()
}

/// Every `next!` macro, by address, in visiting order.
#[derive(Default)]
struct Ordinals {
    order: Vec<*const Macro>,
}

/// Meets `next!` exactly where [`super::NextRewriter`] does: as an expression or a statement.
impl<'ast> Visit<'ast> for Ordinals {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Macro(m) if is_next_macro(&m.mac) => self.order.push(&m.mac as *const Macro),
            _ => syn::visit::visit_expr(self, e),
        }
    }
    fn visit_stmt(&mut self, s: &'ast Stmt) {
        match s {
            Stmt::Macro(m) if is_next_macro(&m.mac) => self.order.push(&m.mac as *const Macro),
            _ => syn::visit::visit_stmt(self, s),
        }
    }
}

/// The `next!` macros in result position, by address.
#[derive(Default)]
struct Tails {
    allowed: HashSet<*const Macro>,
}

impl Tails {
    fn block(&mut self, block: &Block) {
        match block.stmts.last() {
            Some(Stmt::Expr(e, None)) => self.expr(e),
            Some(Stmt::Macro(m)) if m.semi_token.is_none() && is_next_macro(&m.mac) => {
                self.allowed.insert(&m.mac as *const Macro);
            }
            _ => {}
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Macro(m) if is_next_macro(&m.mac) => {
                self.allowed.insert(&m.mac as *const Macro);
            }
            Expr::Call(c) if c.args.len() == 1 && is_ok_path(&c.func) => {
                self.expr(&c.args[0]);
            }
            Expr::If(i) => {
                self.block(&i.then_branch);
                if let Some((_, e)) = &i.else_branch {
                    self.expr(e);
                }
            }
            Expr::Match(m) => {
                for arm in &m.arms {
                    self.expr(&arm.body);
                }
            }
            Expr::Block(b) => self.block(&b.block),
            Expr::Unsafe(u) => self.block(&u.block),
            Expr::Paren(p) => self.expr(&p.expr),
            Expr::Group(g) => self.expr(&g.expr),
            Expr::Return(r) => {
                if let Some(v) = &r.expr {
                    self.expr(v);
                }
            }
            Expr::Loop(l) => {
                let mut breaks = Breaks {
                    tails: self,
                    depth: 0,
                };
                breaks.visit_block(&l.body);
            }
            _ => {}
        }
    }
}

/// `Ok`, `Ok::<T, E>`, `Result::Ok`, `std::result::Result::Ok`, ...
fn is_ok_path(func: &Expr) -> bool {
    match func {
        Expr::Path(p) if p.qself.is_none() => {
            p.path.segments.last().is_some_and(|s| s.ident == "Ok")
        }
        _ => false,
    }
}

/// The values of `return` anywhere in a body (closures and nested items have their own).
struct Returns<'a> {
    tails: &'a mut Tails,
}

impl<'ast> Visit<'ast> for Returns<'_> {
    fn visit_expr_return(&mut self, r: &'ast syn::ExprReturn) {
        if let Some(v) = &r.expr {
            self.tails.expr(v);
        }
        syn::visit::visit_expr_return(self, r);
    }
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The values of unlabelled `break`s that leave one `loop` in result position.
struct Breaks<'a> {
    tails: &'a mut Tails,
    /// How many loops inside the one in result position enclose the current expression.
    depth: usize,
}

impl<'ast> Visit<'ast> for Breaks<'_> {
    fn visit_expr_break(&mut self, b: &'ast syn::ExprBreak) {
        if self.depth == 0
            && b.label.is_none()
            && let Some(v) = &b.expr
        {
            self.tails.expr(v);
        }
        syn::visit::visit_expr_break(self, b);
    }
    fn visit_expr_loop(&mut self, l: &'ast syn::ExprLoop) {
        self.depth += 1;
        syn::visit::visit_expr_loop(self, l);
        self.depth -= 1;
    }
    fn visit_expr_while(&mut self, w: &'ast syn::ExprWhile) {
        self.depth += 1;
        syn::visit::visit_expr_while(self, w);
        self.depth -= 1;
    }
    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.depth += 1;
        syn::visit::visit_expr_for_loop(self, f);
        self.depth -= 1;
    }
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

#[cfg(test)]
mod tests {
    use super::result_nexts;

    fn allowed(body: proc_macro2::TokenStream) -> Vec<usize> {
        let block: syn::Block = syn::parse2(body).expect("a block");
        let mut v: Vec<usize> = result_nexts(&block).into_iter().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn tail_forms_are_results() {
        assert_eq!(allowed(quote::quote!({ next!(self.a) })), [0]);
        assert_eq!(allowed(quote::quote!({ Ok(next!(self.a)) })), [0]);
        assert_eq!(allowed(quote::quote!({ Ok::<_, E>(next!(self.a)) })), [0]);
        assert_eq!(
            allowed(quote::quote!({
                if x {
                    next!(self.a)
                } else if y {
                    Ok(next!(self.b))
                } else {
                    next!(self.c)
                }
            })),
            [0, 1, 2]
        );
        assert_eq!(
            allowed(quote::quote!({
                match x {
                    1 => next!(self.a),
                    _ => {
                        next!(self.b)
                    }
                }
            })),
            [0, 1]
        );
        assert_eq!(
            allowed(quote::quote!({
                if x {
                    return Ok(next!(self.a));
                }
                for i in y {
                    if i {
                        return next!(self.b);
                    }
                }
                next!(self.c)
            })),
            [0, 1, 2]
        );
        assert_eq!(
            allowed(quote::quote!({
                loop {
                    if x {
                        break next!(self.a);
                    }
                }
            })),
            [0]
        );
    }

    #[test]
    fn dropped_values_are_not_results() {
        assert!(
            allowed(quote::quote!({
                next!(self.a);
            }))
            .is_empty()
        );
        assert_eq!(
            allowed(quote::quote!({
                next!(self.a);
                next!(self.b)
            })),
            [1]
        );
        assert_eq!(
            allowed(quote::quote!({
                let _ = next!(self.a);
                next!(self.b)
            })),
            [1]
        );
        assert_eq!(
            allowed(quote::quote!({
                if x {
                    next!(self.a);
                }
                next!(self.b)
            })),
            [1]
        );
        assert_eq!(
            allowed(quote::quote!({
                let f = || {
                    return next!(self.a);
                };
                next!(self.b)
            })),
            [1]
        );
        assert!(
            allowed(quote::quote!({
                loop {
                    loop {
                        break next!(self.a);
                    }
                }
            }))
            .is_empty()
        );
    }
}
