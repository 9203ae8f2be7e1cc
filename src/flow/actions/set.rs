//! `set`: sets variables for this call, each to the value of an expression.

use indexmap::IndexMap;

use super::{ActionType, Branch, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::expr::Expr;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `set`, compiled.
#[derive(Clone, Debug)]
pub struct Set {
    /// Name and value.
    pub assignments: Vec<(String, Expr)>,
}

impl ActionType for Set {
    type Model = IndexMap<Text, Text>;
    const DOC: &'static str = "Set variables for this call: `name: expression`.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next];
    const SHAPE: Shape = Shape::Plain;
    const NEEDS_CALL: bool = false;
    const BARE: bool = false;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }
}

impl CheckAction for Set {
    fn branch_names(_: &IndexMap<Text, Text>) -> Vec<&Text> {
        Vec::new()
    }

    fn assigned_names(model: &IndexMap<Text, Text>) -> Vec<&Text> {
        model.keys().collect()
    }

    fn check(
        cx: &mut Cx,
        s: &Spanned<IndexMap<Text, Text>>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let assignments = cx.assignments(s, cals)?;
        Some(Set { assignments })
    }
}
