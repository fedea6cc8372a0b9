//! The shape of the configuration, read from its types' own `Deserialize` impls instead of a list kept by
//! hand: which keys are lists (comma-separated in environment variables), durations, one of a fixed set of
//! values, tables (and their fields). A key added to a settings struct is known here at once.
//!
//! [`shapes_of`] drives `T::deserialize` with a probing deserializer that presents one field per table, so
//! each run reaches exactly one key and records what its type asks for (`deserialize_seq`: a list,
//! `deserialize_enum`: its variants, a string whose visitor expects "a duration": a duration…). The other
//! fields are missing in every run, so the run ends in an error, which is expected and ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// Deepest table nesting explored (the configuration has three levels; this bounds a recursive type).
const MAX_DEPTH: usize = 8;

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A table with these fields.
    Table(&'static [&'static str]),
    /// A list (`[…]` in TOML, comma-separated in the environment).
    List,
    /// A table with free keys (`headers`, `categories`).
    Map,
    /// One of these values.
    Enum(&'static [&'static str]),
    /// A duration (`"30s"`, `"10m"`, `"1h 30m"`).
    Duration,
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// A type that accepts several forms (e.g. a number or a word).
    Other,
}

impl Shape {
    /// What a value of this shape looks like, for messages: "a duration such as \"30s\"".
    pub(crate) fn expected(&self) -> String {
        match self {
            Shape::Table(_) | Shape::Map => "a table".to_owned(),
            Shape::List => "a list such as [\"a\", \"b\"] (comma-separated in an environment variable)".to_owned(),
            Shape::Enum(variants) => format!("one of {}", quoted_list(variants)),
            Shape::Duration => "a duration with its unit, such as \"30s\", \"10m\" or \"1h 30m\"".to_owned(),
            Shape::Text => "text in quotes".to_owned(),
            Shape::Integer => "a whole number".to_owned(),
            Shape::Number => "a number".to_owned(),
            Shape::Bool => "true or false".to_owned(),
            Shape::Other => "a value of another form".to_owned(),
        }
    }
}

/// `"a", "b" or "c"`.
pub(crate) fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|v| format!("\"{v}\"")).collect();
    match quoted.split_last() {
        None => "(none)".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Every key of `T` with its shape, dotted from `T`'s root (`control.cors_origins`); the root is `""`.
/// Fields of tables inside lists (`[[targets]]`) are not explored: call this on the element type.
pub(crate) fn shapes_of<T: DeserializeOwned>() -> BTreeMap<String, Shape> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<Vec<&'static str>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let mut seen = None;
        let _ = T::deserialize(Probe {
            path: &path,
            seen: &mut seen,
        });
        let Some(shape) = seen else { continue };
        if let Shape::Table(fields) = shape
            && path.len() < MAX_DEPTH
        {
            for field in fields {
                let mut next = path.clone();
                next.push(field);
                todo.push(next);
            }
        }
        out.insert(path.join("."), shape);
    }
    out
}

/// The error of a probing run: it carries nothing (the run is only there to reach one key).
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// Walks `path` (one field per table), then records what the type at its end asks for.
struct Probe<'a> {
    path: &'a [&'static str],
    seen: &'a mut Option<Shape>,
}

impl Probe<'_> {
    fn record<T>(self, shape: Shape) -> Result<T, Stop> {
        if self.path.is_empty() {
            *self.seen = Some(shape);
        }
        Err(Stop)
    }
}

/// What a visitor says it expects ("a duration" for humantime-serde's).
struct Expecting<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

fn text_shape<'de, V: Visitor<'de>>(visitor: &V) -> Shape {
    if Expecting(visitor).to_string() == "a duration" {
        Shape::Duration
    } else {
        Shape::Text
    }
}

macro_rules! leaf {
    ($($method:ident => $shape:expr),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
            self.record($shape)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    leaf! {
        deserialize_any => Shape::Other,
        deserialize_bool => Shape::Bool,
        deserialize_i8 => Shape::Integer,
        deserialize_i16 => Shape::Integer,
        deserialize_i32 => Shape::Integer,
        deserialize_i64 => Shape::Integer,
        deserialize_i128 => Shape::Integer,
        deserialize_u8 => Shape::Integer,
        deserialize_u16 => Shape::Integer,
        deserialize_u32 => Shape::Integer,
        deserialize_u64 => Shape::Integer,
        deserialize_u128 => Shape::Integer,
        deserialize_f32 => Shape::Number,
        deserialize_f64 => Shape::Number,
        deserialize_char => Shape::Text,
        deserialize_identifier => Shape::Text,
        deserialize_bytes => Shape::Other,
        deserialize_byte_buf => Shape::Other,
        deserialize_unit => Shape::Other,
        deserialize_seq => Shape::List,
        deserialize_map => Shape::Map,
        deserialize_ignored_any => Shape::Other,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        let shape = text_shape(&visitor);
        self.record(shape)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        let shape = text_shape(&visitor);
        self.record(shape)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value, Stop> {
        self.record(Shape::Other)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Stop> {
        self.record(Shape::List)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.record(Shape::List)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.record(Shape::Enum(variants))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => self.record(Shape::Table(fields)),
            Some((field, rest)) => visitor.visit_map(OneField {
                key: Some(field),
                value: Some(Probe {
                    path: rest,
                    seen: self.seen,
                }),
            }),
        }
    }
}

/// A table with a single field: the next step of the probe's path.
struct OneField<'a> {
    key: Option<&'static str>,
    value: Option<Probe<'a>>,
}

impl<'de> de::MapAccess<'de> for OneField<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        match self.value.take() {
            Some(probe) => seed.deserialize(probe),
            None => Err(Stop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::targets::registry::TargetConfig;

    #[test]
    fn the_configuration_types_tell_their_lists_durations_and_values() {
        let shapes = shapes_of::<Config>();
        for list in [
            "catalogue.season_codes",
            "catalogue.product_codes",
            "catalogue.product_families",
            "control.cors_origins",
            "entries.languages",
            "targets",
        ] {
            assert_eq!(shapes.get(list), Some(&Shape::List), "{list}");
        }
        assert_eq!(shapes.get("secutix.request_timeout"), Some(&Shape::Duration));
        assert_eq!(shapes.get("secutix.institution"), Some(&Shape::Text));
        assert_eq!(shapes.get("secutix.secret"), Some(&Shape::Text));
        assert_eq!(shapes.get("secutix.calls_per_minute"), Some(&Shape::Integer));
        assert_eq!(shapes.get("availability.enabled"), Some(&Shape::Bool));
        assert_eq!(shapes.get("secutix.transport"), Some(&Shape::Enum(&["rest", "soap"])));
        assert!(matches!(shapes.get(""), Some(Shape::Table(f)) if f.contains(&"secutix")));

        let target = shapes_of::<TargetConfig>();
        assert!(matches!(target.get("kind"), Some(Shape::Enum(v)) if v.contains(&"files") && v.len() == 5));
        assert_eq!(target.get("request_timeout"), Some(&Shape::Duration));
        assert_eq!(target.get("webhook.secret_file"), Some(&Shape::Text));
        assert_eq!(target.get("webhook.headers"), Some(&Shape::Map));
        assert_eq!(target.get("wordpress.owned_fields"), Some(&Shape::List));
    }

    #[test]
    fn value_lists_read_as_a_sentence() {
        assert_eq!(quoted_list(&["a"]), "\"a\"");
        assert_eq!(quoted_list(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }
}
