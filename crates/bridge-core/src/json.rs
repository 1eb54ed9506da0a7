//! JSON read the way the contracts write it: wherever a struct is expected, only a JSON
//! object is accepted.
//!
//! serde's derived `Deserialize` for a struct takes its fields from a sequence too, in
//! declaration order, and serde_json hands it one when the text holds an array: with plain
//! `serde_json::from_slice`, `["<sha>", "<repo>", "main", null]` reads as the JSON trigger
//! `{cause, repo, branch, branch_to}`, and `["ek", "", "er"]` as a Pagure refusal whose error
//! code is empty (serde issue #1587; serde leaves the choice to the data format). No contract
//! the bridge reads (triggers, web-hooks, Pagure's answers, queue messages, the secrets
//! document, EventBridge events) spells an object as an array, so every read of outside JSON
//! into a struct goes through [`from_slice`], [`from_str`] or [`from_value`], which wrap the
//! format in [`ObjectsOnly`]: a struct, at any depth, is read with `deserialize_map`, which
//! refuses anything but an object ("invalid type: sequence, expected struct …").
//!
//! Values serde first buffers whole (untagged and internally tagged enums, `flatten`) are
//! read from serde's private buffer, out of this wrapper's reach; the bridge's outside types
//! use none of these for structs (the JSON trigger's untagged `cause` is a string or a
//! number).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, Visitor};

/// Reads `T` from JSON bytes; every struct in `T` must be a JSON object, and the whole text
/// UTF-8 (RFC 8259): serde_json does not check the strings it skips (members the bridge
/// does not read), so a body with invalid UTF-8 there passed (found by the `webhook` fuzz
/// target). Trailing non-whitespace is refused, as with `serde_json::from_slice`.
pub fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => from_str(text),
        // serde_json's own reading says where (line and column), as for any syntax error.
        Err(e) => Err(serde_json::from_slice::<serde_json::Value>(bytes)
            .err()
            .unwrap_or_else(|| de::Error::custom(format!("the JSON text is not UTF-8: {e}")))),
    }
}

/// [`from_slice`] for text.
pub fn from_str<'de, T: de::Deserialize<'de>>(text: &'de str) -> serde_json::Result<T> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(ObjectsOnly(&mut reader))?;
    reader.end()?;
    Ok(value)
}

/// Reads `T` from an already parsed JSON value (an event a runtime parsed for us); every
/// struct in `T` must be a JSON object.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> serde_json::Result<T> {
    T::deserialize(ObjectsOnly(value))
}

/// A JSON object whose members are skipped, not kept: for a place the contract says object
/// and the bridge needs nothing inside (the `msg` of a web-hook topic that builds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredObject;

impl<'de> de::Deserialize<'de> for IgnoredObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = IgnoredObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<IgnoredObject, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(IgnoredObject)
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A [`Deserializer`] that asks the format it wraps for a map wherever a struct is wanted,
/// and wraps every nested deserializer the same way.
#[derive(Debug)]
pub struct ObjectsOnly<D>(pub D);

/// The same wrapping for the visitors, seeds and accessors a deserializer hands on, so that
/// values nested in sequences, maps, options and enums are read through [`ObjectsOnly`] too.
struct Wrap<T>(T);

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    /// The point of the wrapper: a struct is read as a map, never as a sequence.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128) visit_f32(f32)
        visit_f64(f64) visit_char(char) visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(ObjectsOnly(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(ObjectsOnly(deserializer))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(ObjectsOnly(deserializer))
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Wrap(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Wrap(seed))?;
        Ok((value, Wrap(variant)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrap(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    /// A struct variant's content is read as the variant's single value, through
    /// [`ObjectsOnly::deserialize_struct`]: as a map. (A format's own `struct_variant` would
    /// take a sequence too.)
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.newtype_variant_seed(StructSeed { fields, visitor })
    }
}

/// Reads a struct variant's fields (see [`Wrap::struct_variant`]).
struct StructSeed<V> {
    fields: &'static [&'static str],
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for StructSeed<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        ObjectsOnly(deserializer).deserialize_struct("", self.fields, self.visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: u32,
        b: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Choice {
        Unit,
        Newtype(Inner),
        Tuple(u32, String),
        Struct { a: u32 },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        name: String,
        inner: Inner,
        list: Vec<Inner>,
        map: BTreeMap<String, Inner>,
        maybe: Option<Inner>,
        pair: (u32, Inner),
        choice: Vec<Choice>,
        any: serde_json::Value,
    }

    const GOOD: &str = r#"{"name": "n", "inner": {"a": 1, "b": null}, "list": [{"a": 2}], "map": {"k": {"a": 3, "b": "x"}},
        "maybe": {"a": 4}, "pair": [5, {"a": 6}],
        "choice": ["Unit", {"Newtype": {"a": 7}}, {"Tuple": [8, "t"]}, {"Struct": {"a": 9}}], "any": [1, {"x": [2]}]}"#;

    #[test]
    fn objects_arrays_tuples_and_enums_read_as_with_serde_json() {
        let ours: Outer = from_str(GOOD).expect("strict");
        let plain: Outer = serde_json::from_str(GOOD).expect("plain");
        assert_eq!(ours, plain);
        let value: serde_json::Value = serde_json::from_str(GOOD).expect("value");
        assert_eq!(from_value::<Outer>(value).expect("from value"), plain);
        #[derive(Deserialize)]
        struct Borrows<'a> {
            name: &'a str,
        }
        let text = String::from(r#"{"name": "borrowed"}"#);
        let borrows: Borrows = from_str(&text).expect("borrows");
        assert!(text.as_bytes().as_ptr_range().contains(&borrows.name.as_ptr()), "a borrowed string stays borrowed");
    }

    /// Every place a struct sits, spelled as an array: plain serde_json takes each one,
    /// the strict reader none.
    #[test]
    fn a_struct_spelled_as_an_array_is_refused_at_any_depth() {
        let variants = [
            r#""inner": {"a": 1, "b": null}"#,
            r#""list": [{"a": 2}]"#,
            r#""map": {"k": {"a": 3, "b": "x"}}"#,
            r#""maybe": {"a": 4}"#,
            r#""pair": [5, {"a": 6}]"#,
            r#"{"Newtype": {"a": 7}}"#,
            r#"{"Struct": {"a": 9}}"#,
        ];
        let arrays = [
            r#""inner": [1, null]"#,
            r#""list": [[2, null]]"#,
            r#""map": {"k": [3, "x"]}"#,
            r#""maybe": [4, null]"#,
            r#""pair": [5, [6, null]]"#,
            r#"{"Newtype": [7, null]}"#,
            r#"{"Struct": [9]}"#,
        ];
        for (object, array) in variants.iter().zip(arrays) {
            assert!(GOOD.contains(object), "{object}");
            let text = GOOD.replacen(object, array, 1);
            assert!(serde_json::from_str::<Outer>(&text).is_ok(), "plain serde_json takes {array}");
            let error = from_str::<Outer>(&text).expect_err(array).to_string();
            assert!(error.contains("invalid type: sequence"), "{array}: {error}");
            let value: serde_json::Value = serde_json::from_str(&text).expect("value");
            assert!(from_value::<Outer>(value).is_err(), "from_value takes {array}");
        }
        assert!(from_str::<Inner>("[1, \"b\"]").is_err());
        assert!(from_value::<Inner>(serde_json::json!([1, "b"])).is_err());
        assert!(from_str::<Inner>(r#"{"a": 1} x"#).is_err(), "trailing characters");
        assert_eq!(from_str::<IgnoredObject>(r#"{"a": [1, {"b": null}], "c": "d"}"#).expect("object"), IgnoredObject);
        for other in ["[]", "[1]", "1", "\"x\"", "null"] {
            assert!(from_str::<IgnoredObject>(other).is_err(), "{other}");
        }
    }

    /// The `webhook` fuzz finding: invalid UTF-8 in a member nobody reads passed serde_json.
    #[test]
    fn invalid_utf8_is_refused_even_where_nothing_reads_it() {
        let body = b"{\"a\": 1, \"b\": null, \"skipped\": \"pagu\xfee\"}";
        assert!(serde_json::from_slice::<Inner>(body).is_ok(), "plain serde_json skips it");
        let error = from_slice::<Inner>(body).expect_err("not UTF-8");
        assert!(error.is_syntax() && error.column() > 0, "{error}");
        assert!(from_slice::<IgnoredObject>(b"{\"x\": \"\xff\"}").is_err());
        assert!(from_slice::<IgnoredObject>(b"{} \xff").is_err());
    }

    /// A queue message (the build request) and its internally tagged `cause`, which serde
    /// buffers before reading: every object in it spelled as an array is refused.
    #[test]
    fn a_queue_message_is_objects_all_the_way_down() {
        let object = r#"{"request_id": "r", "idempotency_key": "k", "project": {"key": "k", "namespace": null, "name": "n", "fork_user": null},
            "repo_url": "u", "cause": {"kind": "commit", "sha": "abc"}, "branch": "b", "branch_to": null, "trigger": "json",
            "received_at": "2026-01-01T00:00:00Z"}"#;
        let request = crate::model::BuildRequest::from_json(object).expect("object");
        assert_eq!(crate::model::BuildRequest::from_json(&request.to_json()).expect("round trip"), request);
        for (part, array) in [
            (r#"{"kind": "commit", "sha": "abc"}"#, r#"["commit", "abc", null]"#),
            (r#"{"key": "k", "namespace": null, "name": "n", "fork_user": null}"#, r#"["k", null, "n", null]"#),
        ] {
            let text = object.replacen(part, array, 1);
            assert!(
                serde_json::from_str::<crate::model::BuildRequest>(&text).is_ok(),
                "plain serde_json takes {array}"
            );
            assert!(crate::model::BuildRequest::from_json(&text).is_err(), "{array}");
        }
        for mixed in [r#"{"kind": "commit", "sha": "abc", "id": 1}"#, r#"{"kind": "pull_request"}"#] {
            let text = object.replacen(r#"{"kind": "commit", "sha": "abc"}"#, mixed, 1);
            assert!(crate::model::BuildRequest::from_json(&text).is_err(), "{mixed}");
        }
    }
}
