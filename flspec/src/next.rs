//! [`Next`]: the transition a step returns.

use crate::graph::TransitionId;
use crate::{Flow, FlowSteps, StepId};

/// Where a flow goes after a step: the value of `next!(self.step, ...)`.
///
/// Inside a `#[flow]` impl, `next!` builds it; the macro checks the target step, the fan-out and
/// the field filter at compile time, so a `Next` always describes an edge of
/// [`Flow::graph`](crate::Flow::graph). A step must return the `Next` it builds: `#[flow]`
/// rejects a `next!` whose value is dropped (a second call in sequence, `let _ = next!(..)`),
/// and a `Next` dropped anywhere else is an `unused_must_use` warning:
///
/// ```compile_fail
/// #[deny(unused_must_use)]
/// fn drop_it<F: flspec::FlowSteps>(make: impl Fn() -> flspec::Next<F>) {
///     make();
/// }
/// ```
#[must_use = "a `Next` says where the flow goes; return it from the step"]
pub struct Next<F: FlowSteps> {
    step: F::Step,
    foreach: Option<FanOutList>,
    transition: TransitionId,
}

/// Who a fan-out goes to: a list of names, or every collaborator of the run.
///
/// `foreach = ctx.collaborators()` (the run's own list, passed as it is) becomes
/// [`FanOutList::Roster`], a mark rather than a copy of every name, so that a fan-out to a
/// hundred thousand collaborators costs no list of a hundred thousand names. Any other list,
/// even one with the same names, is kept as [`FanOutList::Names`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanOutList {
    /// These collaborators, in this order.
    Names(Vec<String>),
    /// Every collaborator of the run, in the run's order.
    Roster,
}

impl FanOutList {
    /// The names, or `None` for the whole roster.
    pub fn names(&self) -> Option<&[String]> {
        match self {
            FanOutList::Names(names) => Some(names),
            FanOutList::Roster => None,
        }
    }

    /// Whether `name` is on the list, given the run's collaborators.
    ///
    /// ```
    /// use flspec::FanOutList;
    ///
    /// let run = ["a".to_string(), "b".to_string()];
    /// assert!(FanOutList::Roster.contains("b", &run));
    /// assert!(!FanOutList::Names(vec!["a".into()]).contains("b", &run));
    /// ```
    pub fn contains(&self, name: &str, roster: &[String]) -> bool {
        match self {
            FanOutList::Names(names) => names.iter().any(|n| n == name),
            FanOutList::Roster => roster.iter().any(|n| n == name),
        }
    }
}

thread_local! {
    /// The run's collaborator list while an aggregator step runs on this thread (see
    /// [`RosterScope`]): its address and length.
    static ROSTER: std::cell::Cell<(*const String, usize)> =
        const { std::cell::Cell::new((std::ptr::null(), 0)) };
}

/// While alive, `foreach` lists built on this thread that are the run's own collaborator list
/// become [`FanOutList::Roster`]. The driver holds one around each aggregator step.
pub(crate) struct RosterScope {
    previous: (*const String, usize),
}

impl RosterScope {
    /// Marks `roster` as the run's list until the scope ends.
    pub(crate) fn enter(roster: &[String]) -> Self {
        let previous = ROSTER.with(|r| r.replace((roster.as_ptr(), roster.len())));
        RosterScope { previous }
    }
}

impl Drop for RosterScope {
    fn drop(&mut self) {
        ROSTER.with(|r| r.set(self.previous));
    }
}

/// Collects a `foreach` list: [`FanOutList::Roster`] if its items are the run's own names, in
/// order (the same strings in memory, not just equal text: `ctx.collaborators()` itself),
/// otherwise a copy of every name.
pub(crate) fn collect_fan_out<I, S>(names: I) -> FanOutList
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let (ptr, len) = ROSTER.with(std::cell::Cell::get);
    if ptr.is_null() {
        return FanOutList::Names(names.into_iter().map(|s| s.as_ref().to_owned()).collect());
    }
    // SAFETY: a non-null pointer was set by a `RosterScope` that is alive on this thread: it
    // is held by the driver for the whole call of the aggregator step that runs this code,
    // and it borrows the slice for longer than it lives, so the slice is valid and unchanged.
    let roster: &[String] = unsafe { std::slice::from_raw_parts(ptr, len) };
    let mut matched = 0;
    let mut copied: Option<Vec<String>> = None;
    for item in names {
        let name = item.as_ref();
        match &mut copied {
            None if roster
                .get(matched)
                .is_some_and(|r| std::ptr::eq(r.as_str(), name)) =>
            {
                matched += 1;
            }
            None => {
                let mut list = roster[..matched].to_vec();
                list.push(name.to_owned());
                copied = Some(list);
            }
            Some(list) => list.push(name.to_owned()),
        }
    }
    match copied {
        Some(list) => FanOutList::Names(list),
        None if matched == roster.len() && matched > 0 => FanOutList::Roster,
        None => FanOutList::Names(roster[..matched].to_vec()),
    }
}

impl<F: Flow> Next<F> {
    /// The step the flow continues with.
    pub fn step(&self) -> F::Step {
        self.step
    }

    /// For a fan-out, the collaborators it sends the flow to, in order.
    pub fn foreach(&self) -> Option<&FanOutList> {
        self.foreach.as_ref()
    }

    /// Takes the collaborator list out of a fan-out.
    pub fn take_foreach(&mut self) -> Option<FanOutList> {
        self.foreach.take()
    }

    /// The edge of the flow's graph this transition follows.
    pub fn transition(&self) -> TransitionId {
        self.transition
    }

    /// Rebuilds a transition from its parts (for runtimes that receive it over a wire or read it
    /// from a checkpoint). Returns `None` if the graph has no such edge, or if the edge's target
    /// or fan-out does not match.
    pub fn from_parts(transition: TransitionId, foreach: Option<FanOutList>) -> Option<Self> {
        let edge = F::graph().transition(transition)?;
        let step = F::Step::from_index(edge.to())?;
        if edge.is_foreach() != foreach.is_some() {
            return None;
        }
        Some(Next {
            step,
            foreach,
            transition,
        })
    }
}

impl<F: FlowSteps> Next<F> {
    #[doc(hidden)]
    pub fn __new(step: F::Step, foreach: Option<FanOutList>, transition: u16) -> Self {
        Next {
            step,
            foreach,
            transition: TransitionId::new(transition),
        }
    }
}

impl<F: FlowSteps> std::fmt::Debug for Next<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("step", &self.step.as_str())
            .field(
                "foreach",
                &self
                    .foreach
                    .as_ref()
                    .map(|f| f.names().map(<[String]>::len)),
            )
            .field("transition", &self.transition)
            .finish()
    }
}

impl<F: FlowSteps> Clone for Next<F> {
    fn clone(&self) -> Self {
        Next {
            step: self.step,
            foreach: self.foreach.clone(),
            transition: self.transition,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FanOutList, RosterScope, collect_fan_out};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("site-{i}")).collect()
    }

    #[test]
    fn the_runs_own_list_is_marked_not_copied() {
        let roster = names(4);
        let _scope = RosterScope::enter(&roster);
        assert_eq!(collect_fan_out(&roster), FanOutList::Roster);
        assert_eq!(collect_fan_out(roster.iter()), FanOutList::Roster);
    }

    #[test]
    fn any_other_list_is_copied_name_by_name() {
        let roster = names(4);
        let _scope = RosterScope::enter(&roster);
        // The same text elsewhere in memory, a prefix, the list and one more, another order.
        let same_text = roster.clone();
        assert_eq!(
            collect_fan_out(&same_text),
            FanOutList::Names(roster.clone())
        );
        assert_eq!(
            collect_fan_out(&roster[..2]),
            FanOutList::Names(roster[..2].to_vec())
        );
        let longer: Vec<&str> = roster
            .iter()
            .map(String::as_str)
            .chain(["site-9"])
            .collect();
        let mut expected = roster.clone();
        expected.push("site-9".into());
        assert_eq!(collect_fan_out(longer), FanOutList::Names(expected));
        let reversed: Vec<&String> = roster.iter().rev().collect();
        let mut expected = roster.clone();
        expected.reverse();
        assert_eq!(collect_fan_out(reversed), FanOutList::Names(expected));
        assert_eq!(
            collect_fan_out(Vec::<String>::new()),
            FanOutList::Names(Vec::new())
        );
    }

    #[test]
    fn outside_a_step_nothing_is_marked_and_scopes_nest() {
        let roster = names(3);
        assert_eq!(collect_fan_out(&roster), FanOutList::Names(roster.clone()));
        let other = names(2);
        {
            let _outer = RosterScope::enter(&roster);
            {
                let _inner = RosterScope::enter(&other);
                assert_eq!(collect_fan_out(&other), FanOutList::Roster);
                assert_eq!(collect_fan_out(&roster), FanOutList::Names(roster.clone()));
            }
            assert_eq!(collect_fan_out(&roster), FanOutList::Roster);
        }
        assert_eq!(collect_fan_out(&roster), FanOutList::Names(roster.clone()));
    }
}
