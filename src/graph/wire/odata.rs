//! `@odata.type` tags: reading them tolerantly and writing them first.
//!
//! Graph marks polymorphic objects with `"@odata.type":
//! "#microsoft.graph.<name>"`. Readers here accept the tag with or without
//! `#` and the `microsoft.graph.` namespace, in any ASCII case; writers emit
//! the full form. Nothing outside `graph::wire` needs to know the spelling.

use serde::{Serialize, Serializer};
use serde_json::Value;

/// The `@odata.type` of a JSON object, if it has one as a string.
pub(crate) fn odata_type_of(value: &Value) -> Option<&str> {
    value.get("@odata.type").and_then(Value::as_str)
}

/// The short name of an `@odata.type` value:
/// `#microsoft.graph.call` and `microsoft.graph.call` both give `call`.
pub(crate) fn odata_short_name(odata_type: &str) -> &str {
    let bare = odata_type.trim().trim_start_matches('#');
    match bare.get(..16) {
        Some(prefix) if prefix.eq_ignore_ascii_case("microsoft.graph.") => &bare[16..],
        _ => bare,
    }
}

/// Whether `value` carries the `@odata.type` whose short name is `short`.
pub(super) fn has_type(value: &Value, short: &str) -> bool {
    odata_type_of(value).is_some_and(|t| odata_short_name(t).eq_ignore_ascii_case(short))
}

/// Serialises `inner` (a struct) as a JSON object whose first key is
/// `@odata.type`.
pub(super) fn serialize_tagged<S, T>(
    odata_type: &str,
    inner: &T,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
{
    #[derive(Serialize)]
    struct Tagged<'a, T> {
        #[serde(rename = "@odata.type")]
        odata_type: &'a str,
        #[serde(flatten)]
        inner: &'a T,
    }
    Tagged { odata_type, inner }.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_ignore_hash_namespace_and_case() {
        assert_eq!(odata_short_name("#microsoft.graph.call"), "call");
        assert_eq!(
            odata_short_name("microsoft.graph.commsOperation"),
            "commsOperation"
        );
        assert_eq!(
            odata_short_name("#Microsoft.Graph.participant"),
            "participant"
        );
        assert_eq!(odata_short_name("call"), "call");
        assert_eq!(odata_short_name("#é"), "é");
    }
}
