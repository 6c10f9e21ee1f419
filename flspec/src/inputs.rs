//! [`Inputs`]: what a join receives from the collaborators of a fan-out.

use std::ops::{Deref, DerefMut};

/// The state one collaborator hands to a join, with the collaborator's name.
///
/// It dereferences to the flow state, so `input.model` reads that collaborator's `model`.
#[derive(Debug, Clone, PartialEq)]
pub struct Input<F> {
    name: String,
    state: F,
}

impl<F> Input<F> {
    /// An input from a collaborator.
    pub fn new(name: impl Into<String>, state: F) -> Self {
        Input {
            name: name.into(),
            state,
        }
    }

    /// The collaborator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collaborator's state.
    pub fn state(&self) -> &F {
        &self.state
    }

    /// The name and the state.
    pub fn into_parts(self) -> (String, F) {
        (self.name, self.state)
    }
}

impl<F> Deref for Input<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.state
    }
}

impl<F> DerefMut for Input<F> {
    fn deref_mut(&mut self) -> &mut F {
        &mut self.state
    }
}

/// The inputs of a join: one per collaborator that ran the fan-out, in the order of its `foreach`
/// list.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs<F> {
    items: Vec<Input<F>>,
}

impl<F> Inputs<F> {
    /// Inputs from a list, kept in order.
    pub fn new(items: Vec<Input<F>>) -> Self {
        Inputs { items }
    }

    /// How many collaborators reached the join.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no collaborator reached the join.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The inputs, in fan-out order.
    pub fn iter(&self) -> std::slice::Iter<'_, Input<F>> {
        self.items.iter()
    }

    /// The collaborators' names, in fan-out order (a ready `foreach` list for the next round).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.items.iter().map(|i| i.name.as_str())
    }

    /// The input of one collaborator.
    pub fn get(&self, name: &str) -> Option<&Input<F>> {
        self.items.iter().find(|i| i.name == name)
    }

    /// The inputs as a slice.
    pub fn as_slice(&self) -> &[Input<F>] {
        &self.items
    }

    /// The inputs as a vector.
    pub fn into_vec(self) -> Vec<Input<F>> {
        self.items
    }

    /// The one input a folding join is called with, or how many there are if not exactly one.
    ///
    /// ```
    /// use flspec::{Input, Inputs};
    ///
    /// let one = Inputs::new(vec![Input::new("a", 1u8)]);
    /// assert_eq!(one.into_single().map(|i| *i), Ok(1));
    /// assert_eq!(Inputs::<u8>::new(Vec::new()).into_single().err(), Some(0));
    /// ```
    ///
    /// # Errors
    /// The number of inputs, when it is not one.
    pub fn into_single(mut self) -> Result<Input<F>, usize> {
        match self.items.len() {
            1 => Ok(self.items.pop().expect("one input")),
            n => Err(n),
        }
    }
}

impl<F> IntoIterator for Inputs<F> {
    type Item = Input<F>;
    type IntoIter = std::vec::IntoIter<Input<F>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, F> IntoIterator for &'a Inputs<F> {
    type Item = &'a Input<F>;
    type IntoIter = std::slice::Iter<'a, Input<F>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}
