//! The JSON Schema of flow files, generated from the [`model`](super::model) types.
//!
//! Editors use it (through the `yaml-language-server` comment at the top of
//! each flow) to complete and check fields as the designer types.

use super::model::FlowFile;

/// The JSON Schema (draft 2020-12) of a flow file.
pub fn flow_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(FlowFile);
    serde_json::to_value(schema).unwrap_or_default()
}

/// The schema as pretty JSON text, ending with a newline.
pub fn flow_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&flow_schema()).unwrap_or_default();
    s.push('\n');
    s
}
