//! `resultInfo`: the outcome codes Graph attaches to calls and operations.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `code` or `subcode` in a `resultInfo`.
///
/// Graph normally sends numbers (`500`, `7015`), but older pages send
/// strings: numeric strings (`"200"`) become [`Code::Number`]; anything else
/// (`"transferring"`) is kept as [`Code::Text`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// A numeric code such as `500` or `7015`.
    Number(i64),
    /// A code that is not a number, such as the old beta's `"transferAccepted"`.
    Text(String),
}

impl Code {
    /// The code as a number, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(_) => None,
        }
    }

    /// The code as text, if it is not a number.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Number(_) => None,
            Self::Text(t) => Some(t),
        }
    }

    /// Reads a code from text: numeric text (surrounding spaces allowed)
    /// becomes a number.
    pub fn from_text(text: &str) -> Self {
        match text.trim().parse::<i64>() {
            Ok(n) => Self::Number(n),
            Err(_) => Self::Text(text.to_owned()),
        }
    }
}

impl From<i64> for Code {
    fn from(n: i64) -> Self {
        Self::Number(n)
    }
}

impl PartialEq<i64> for Code {
    fn eq(&self, other: &i64) -> bool {
        self.as_i64() == Some(*other)
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_text() == Some(*other)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => serializer.serialize_i64(*n),
            Self::Text(t) => serializer.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;

        impl Visitor<'_> for CodeVisitor {
            type Value = Code;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                Ok(Code::Number(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                Ok(i64::try_from(v).map_or_else(|_| Code::Text(v.to_string()), Code::Number))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Code, E> {
                // `500.0` is still 500; `1.5` is not a code Graph sends, keep it as text.
                let whole = v.fract() == 0.0 && v.abs() < 9.0e15;
                #[allow(clippy::cast_possible_truncation)]
                Ok(if whole {
                    Code::Number(v as i64)
                } else {
                    Code::Text(v.to_string())
                })
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Code, E> {
                Ok(Code::Text(v.to_string()))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                Ok(Code::from_text(v))
            }
        }

        deserializer.deserialize_any(CodeVisitor)
    }
}

/// Graph's `resultInfo`: why a call or an operation ended the way it did.
///
/// Reading accepts both `subcode` (v1.0) and `subCode` (beta and some v1.0
/// examples); writing uses `subcode`. Seen in the wild: 0/7015 or 200/7015
/// transfer completed, 500/7000 transfer failed, 500/7700 consultative
/// transfer failed, 200/4097 and 200/5001 conversation ended, 408/8537
/// keep-alive missed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ResultInfoOnWire")]
pub struct ResultInfo {
    /// The main code, HTTP-like (`0`, `200`, `500`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    /// The detailed code (`7015`, ...), or text in the old beta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcode: Option<Code>,
    /// A human-readable message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ResultInfo {
    /// A result with a numeric code and subcode and no message.
    pub fn new(code: i64, subcode: i64) -> Self {
        Self {
            code: Some(Code::Number(code)),
            subcode: Some(Code::Number(subcode)),
            message: None,
        }
    }

    /// The code as a number, if there is a numeric one.
    pub fn code_number(&self) -> Option<i64> {
        self.code.as_ref().and_then(Code::as_i64)
    }

    /// The subcode as a number, if there is a numeric one.
    pub fn subcode_number(&self) -> Option<i64> {
        self.subcode.as_ref().and_then(Code::as_i64)
    }
}

/// What `resultInfo` looks like on the wire, both spellings of the subcode
/// included.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultInfoOnWire {
    #[serde(default)]
    code: Option<Code>,
    #[serde(default, rename = "subcode")]
    subcode_lower: Option<Code>,
    #[serde(default, rename = "subCode")]
    subcode_camel: Option<Code>,
    #[serde(default)]
    message: Option<String>,
}

impl From<ResultInfoOnWire> for ResultInfo {
    fn from(wire: ResultInfoOnWire) -> Self {
        Self {
            code: wire.code,
            subcode: wire.subcode_lower.or(wire.subcode_camel),
            message: wire.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> ResultInfo {
        serde_json::from_str(json).expect("a resultInfo")
    }

    #[test]
    fn both_subcode_spellings_are_read() {
        assert_eq!(
            read(r#"{"code":0,"subcode":7015}"#).subcode_number(),
            Some(7015)
        );
        assert_eq!(
            read(r#"{"code":500,"subCode":7000}"#).subcode_number(),
            Some(7000)
        );
        let both = read(r#"{"subcode":1,"subCode":2}"#);
        assert_eq!(both.subcode_number(), Some(1));
    }

    #[test]
    fn codes_are_numbers_or_text() {
        let info = read(r#"{"code":"200","subCode":"transferring","message":null}"#);
        assert_eq!(info.code, Some(Code::Number(200)));
        assert_eq!(info.subcode, Some(Code::Text("transferring".into())));
        assert_eq!(info.message, None);
        assert_eq!(read(r#"{"code":500.0}"#).code_number(), Some(500));
        assert_eq!(read(r#"{"code":" 408 "}"#).code_number(), Some(408));
        assert_eq!(
            read(r#"{"code":18446744073709551615}"#).code,
            Some(Code::Text("18446744073709551615".into()))
        );
    }

    #[test]
    fn writes_subcode_in_lower_case() {
        let json = serde_json::to_value(ResultInfo::new(0, 7015)).expect("serialises");
        assert_eq!(json, serde_json::json!({"code": 0, "subcode": 7015}));
    }
}
