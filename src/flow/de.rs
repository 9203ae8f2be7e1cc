//! A serde deserializer over a [`Node`] tree.
//!
//! Every error carries the span of the innermost node it concerns, and the
//! structured cause (unknown field with the expected names, wrong type,
//! missing field), so that [`crate::flow::diagnostic`] can say "did you
//! mean". Scalars are typed on demand: a plain `10` read as a string is
//! `"10"`, read as a number is 10. [`Spanned`](super::span::Spanned) values
//! get their node's span. It never touches I/O.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::span::{SPANNED_END, SPANNED_NAME, SPANNED_START, SPANNED_VALUE, Span};
use super::yaml::{Node, NodeKind, is_null_text};

/// The enum name by which [`OneOrMany`](super::model::OneOrMany) asks for
/// the shape of a node: variant `many` for a list, `one` for anything else,
/// with the node itself as the content.
pub const ONE_OR_MANY_NAME: &str = "$__callflow_one_or_many";

/// Whether `D` is this module's deserializer (which answers [`ONE_OR_MANY_NAME`]).
pub fn is_node_deserializer<D>() -> bool {
    std::any::type_name::<D>() == std::any::type_name::<NodeDe<'static>>()
}

/// Why a node could not become the requested type.
#[derive(Clone, Debug, PartialEq)]
pub struct DeError {
    /// The cause.
    pub kind: DeErrorKind,
    /// The node concerned, once known.
    pub span: Option<Span>,
}

/// The causes of a [`DeError`].
#[derive(Clone, Debug, PartialEq)]
pub enum DeErrorKind {
    /// A key the type does not have.
    UnknownField {
        /// The key as written.
        field: String,
        /// The keys the type accepts.
        expected: &'static [&'static str],
    },
    /// A variant name the enum does not have.
    UnknownVariant {
        /// The name as written.
        variant: String,
        /// The names it accepts.
        expected: &'static [&'static str],
    },
    /// A required key is absent.
    MissingField(&'static str),
    /// A value of the wrong type, or a value out of range.
    InvalidType {
        /// What was found, e.g. `a sequence`.
        found: String,
        /// What was expected, e.g. `a string`.
        expected: String,
    },
    /// Any other message from a `Deserialize` implementation.
    Custom(String),
}

impl DeError {
    fn at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DeErrorKind::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            DeErrorKind::UnknownVariant { variant, .. } => write!(f, "unknown name `{variant}`"),
            DeErrorKind::MissingField(field) => write!(f, "missing field `{field}`"),
            DeErrorKind::InvalidType { found, expected } => {
                write!(f, "expected {expected}, found {found}")
            }
            DeErrorKind::Custom(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            kind: DeErrorKind::Custom(msg.to_string()),
            span: None,
        }
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError {
            kind: DeErrorKind::InvalidType {
                found: describe(unexp),
                expected: exp.to_string(),
            },
            span: None,
        }
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: DeErrorKind::UnknownField {
                field: field.to_owned(),
                expected,
            },
            span: None,
        }
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: DeErrorKind::UnknownVariant {
                variant: variant.to_owned(),
                expected,
            },
            span: None,
        }
    }
    fn missing_field(field: &'static str) -> Self {
        DeError {
            kind: DeErrorKind::MissingField(field),
            span: None,
        }
    }
}

fn describe(unexp: de::Unexpected<'_>) -> String {
    match unexp {
        de::Unexpected::Str(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(37).collect();
            format!("`{head}...`")
        }
        de::Unexpected::Str(s) => format!("`{s}`"),
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Unit => "nothing (null)".into(),
        other => other.to_string(),
    }
}

/// Deserializes `T` from `node`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e| e.at(node.span))
}

/// A deserializer for one node.
#[derive(Clone, Copy)]
pub struct NodeDe<'a>(pub &'a Node);

impl<'a> NodeDe<'a> {
    fn scalar(&self) -> Option<(&'a str, bool)> {
        match &self.0.kind {
            NodeKind::Scalar { text, plain } => Some((text.as_str(), *plain)),
            _ => None,
        }
    }

    fn unexpected(&self) -> de::Unexpected<'a> {
        match &self.0.kind {
            NodeKind::Scalar { text, plain } if *plain && is_null_text(text) => {
                de::Unexpected::Unit
            }
            NodeKind::Scalar { text, .. } => de::Unexpected::Str(text),
            NodeKind::Seq(_) => de::Unexpected::Seq,
            NodeKind::Map(_) => de::Unexpected::Map,
        }
    }

    fn wrong<V: Visitor<'a>>(&self, visitor: &V) -> DeError {
        <DeError as de::Error>::invalid_type(self.unexpected(), visitor).at(self.0.span)
    }

    fn parse_num<T: std::str::FromStr, V: Visitor<'a>>(&self, visitor: &V) -> Result<T, DeError> {
        self.scalar()
            .and_then(|(t, _)| t.trim().replace('_', "").parse::<T>().ok())
            .ok_or_else(|| self.wrong(visitor))
    }
}

macro_rules! deserialize_number {
    ($($method:ident => $visit:ident : $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n: $ty = self.parse_num(&visitor)?;
            visitor.$visit::<DeError>(n).map_err(|e: DeError| e.at(self.0.span))
        }
    )*};
}

impl<'a> Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.0.span;
        let out = match &self.0.kind {
            NodeKind::Scalar { text, plain: false } => visitor.visit_str(text),
            NodeKind::Scalar { text, plain: true } => {
                let t = text.as_str();
                if is_null_text(t) {
                    visitor.visit_unit()
                } else if let Some(b) = parse_bool(t) {
                    visitor.visit_bool(b)
                } else if let Some(i) = parse_int(t) {
                    visitor.visit_i64(i)
                } else if let Some(f) = parse_float(t) {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(t)
                }
            }
            NodeKind::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
        };
        out.map_err(|e| e.at(span))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar().and_then(|(t, _)| parse_bool(t)) {
            Some(b) => visitor.visit_bool(b),
            None => Err(self.wrong(&visitor)),
        }
    }

    deserialize_number! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((t, plain)) if !(plain && is_null_text(t)) => visitor
                .visit_borrowed_str::<DeError>(t)
                .map_err(|e: DeError| e.at(self.0.span)),
            _ => Err(self.wrong(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.0.is_null() || matches!(&self.0.kind, NodeKind::Map(m) if m.is_empty()) {
            visitor.visit_unit()
        } else {
            Err(self.wrong(&visitor))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            NodeKind::Seq(items) => visitor
                .visit_seq(Seq {
                    items: items.iter(),
                })
                .map_err(|e| e.at(self.0.span)),
            _ => Err(self.wrong(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        static EMPTY: Vec<(Node, Node)> = Vec::new();
        let entries = match &self.0.kind {
            NodeKind::Map(entries) => entries,
            _ if self.0.is_null() => &EMPTY,
            _ => return Err(self.wrong(&visitor)),
        };
        visitor
            .visit_map(Map {
                entries: entries.iter(),
                value: None,
            })
            .map_err(|e| e.at(self.0.span))
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED_NAME {
            return visitor.visit_map(SpannedAccess {
                node: self.0,
                state: 0,
            });
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.0.span;
        if name == ONE_OR_MANY_NAME {
            let shape = if matches!(self.0.kind, NodeKind::Seq(_)) {
                "many"
            } else {
                "one"
            };
            return visitor
                .visit_enum(Shape {
                    shape,
                    node: self.0,
                })
                .map_err(|e| e.at(span));
        }
        let access = match &self.0.kind {
            NodeKind::Scalar { .. } => Enum {
                tag: self.0,
                content: None,
            },
            NodeKind::Map(entries) if entries.len() == 1 => Enum {
                tag: &entries[0].0,
                content: Some(&entries[0].1),
            },
            _ => {
                return Err(DeError {
                    kind: DeErrorKind::InvalidType {
                        found: describe(self.unexpected()),
                        expected: format!("exactly one of {}", list(variants)),
                    },
                    span: Some(span),
                });
            }
        };
        visitor.visit_enum(access).map_err(|e| e.at(span))
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// `a`, `b` or `c`, for messages.
pub fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => "nothing".into(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(t: &str) -> Option<i64> {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn parse_float(t: &str) -> Option<f64> {
    let looks_numeric = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && t.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric { t.parse().ok() } else { None }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'a> SeqAccess<'a> for Seq<'a> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe(node))
                .map(Some)
                .map_err(|e| e.at(node.span)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'a> MapAccess<'a> for Map<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(NodeDe(key))
                    .map(Some)
                    .map_err(|e| e.at(key.span))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before key"))?;
        seed.deserialize(NodeDe(node)).map_err(|e| e.at(node.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct SpannedAccess<'a> {
    node: &'a Node,
    state: u8,
}

impl<'a> MapAccess<'a> for SpannedAccess<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let key = match self.state {
            0 => SPANNED_START,
            1 => SPANNED_END,
            2 => SPANNED_VALUE,
            _ => return Ok(None),
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        self.state += 1;
        match self.state {
            1 => seed.deserialize((self.node.span.start as u64).into_deserializer()),
            2 => seed.deserialize((self.node.span.end as u64).into_deserializer()),
            _ => seed
                .deserialize(NodeDe(self.node))
                .map_err(|e| e.at(self.node.span)),
        }
    }
}

struct Enum<'a> {
    tag: &'a Node,
    content: Option<&'a Node>,
}

impl<'a> EnumAccess<'a> for Enum<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'a>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let tag = self.tag;
        let v = seed.deserialize(NodeDe(tag)).map_err(|e| e.at(tag.span))?;
        Ok((v, self))
    }
}

impl<'a> VariantAccess<'a> for Enum<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None => Ok(()),
            Some(node) if node.is_null() => Ok(()),
            Some(node) => Err(DeError {
                kind: DeErrorKind::Custom(format!(
                    "`{}` takes no value",
                    self.tag.as_str().unwrap_or_default()
                )),
                span: Some(node.span),
            }),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        let node = self.content.unwrap_or(self.tag);
        seed.deserialize(NodeDe(node)).map_err(|e| e.at(node.span))
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let node = self.content.unwrap_or(self.tag);
        NodeDe(node).deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.content.unwrap_or(self.tag);
        NodeDe(node).deserialize_map(visitor)
    }
}

/// The shape of a node, for [`ONE_OR_MANY_NAME`].
struct Shape<'a> {
    shape: &'static str,
    node: &'a Node,
}

impl<'a> EnumAccess<'a> for Shape<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'a>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.shape))?;
        Ok((v, self))
    }
}

impl<'a> VariantAccess<'a> for Shape<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(NodeDe(self.node))
            .map_err(|e| e.at(self.node.span))
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        NodeDe(self.node).deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        NodeDe(self.node).deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::{OneOrMany, TargetDef, Text};
    use crate::flow::span::Spanned;
    use crate::flow::yaml::{Budget, parse};

    #[test]
    fn one_or_many_keeps_spans_in_every_shape() {
        let src = "a: \"+14255550100\"\nb: [x, y]\nc: { phone: \"+1\" }\n";
        let doc = parse(src, Budget::default()).expect("parses");
        let a: OneOrMany<Text> = from_node(doc.root.get("a").expect("a")).expect("one");
        let t = &a.as_slice()[0];
        assert_eq!(&src[t.span.start..t.span.end], "\"+14255550100\"");
        let b: OneOrMany<Text> = from_node(doc.root.get("b").expect("b")).expect("many");
        let spans: Vec<&str> = b
            .as_slice()
            .iter()
            .map(|t| &src[t.span.start..t.span.end])
            .collect();
        assert_eq!(spans, ["x", "y"]);
        let c: OneOrMany<Spanned<TargetDef>> =
            from_node(doc.root.get("c").expect("c")).expect("map");
        let phone = c.as_slice()[0].value.phone.as_ref().expect("phone");
        assert_eq!(&src[phone.span.start..phone.span.end], "\"+1\"");
        // Other deserializers read it as it comes.
        let j: OneOrMany<String> = serde_json::from_str("\"x\"").expect("json one");
        assert_eq!(j.as_slice(), ["x"]);
        let j: OneOrMany<String> = serde_json::from_str("[\"x\", \"y\"]").expect("json many");
        assert_eq!(j.as_slice(), ["x", "y"]);
    }
}
