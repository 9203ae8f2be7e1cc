//! Checking the parameters of an `api` start: [`crate::flow::check_params`],
//! the same check `callflow simulate` and scenarios use, its refusal said
//! as a [`StartError`].

use serde_json::{Map, Value};

use crate::flow::{Flow, ParamsError, check_params};

use super::StartError;

/// The parameters to start `flow` with: `given` checked, defaults filled in.
pub(super) fn check(
    flow: &Flow,
    given: Map<String, Value>,
) -> Result<Map<String, Value>, StartError> {
    check_params(flow, given).map_err(|e| match e {
        ParamsError::NotApi => StartError::NotApi {
            flow: flow.name.clone(),
        },
        e @ ParamsError::Invalid(_) => StartError::InvalidParams {
            problems: e.sentences(),
        },
    })
}
