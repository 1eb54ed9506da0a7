//! The injected entries, written: as block lines with a given indentation, as flow entries,
//! and as the parser events they must read back as (for the self-check's digest). Values
//! are always double-quoted and escaped; names are written plain only when every YAML
//! reader (1.1 and 1.2) takes them as that string.

use std::borrow::Cow;

use saphyr_parser::{Event, ScalarStyle};

/// The events of entries `path[0]: {path[1]: {…: {name: "value", …}}}` as written here.
pub(super) fn wanted<'e>(path: &[&'e str], entries: impl Iterator<Item = (&'e str, &'e str)>) -> Vec<Event<'e>> {
    let mut events = Vec::new();
    for key in path {
        events.push(Event::Scalar(Cow::Borrowed(*key), ScalarStyle::Plain, 0, None));
        events.push(Event::MappingStart(0, None));
    }
    for (name, value) in entries {
        let style = if plain_name(name) { ScalarStyle::Plain } else { ScalarStyle::DoubleQuoted };
        events.push(Event::Scalar(Cow::Borrowed(name), style, 0, None));
        events.push(Event::Scalar(Cow::Borrowed(value), ScalarStyle::DoubleQuoted, 0, None));
    }
    events.extend(path.iter().map(|_| Event::MappingEnd));
    events
}

pub(super) fn block_entries(indent: &str, path: &[&str], entries: &[(&str, &str)], newline: &str) -> String {
    let mut text = String::new();
    let mut indent = indent.to_owned();
    for key in path {
        text.push_str(&format!("{indent}{key}:{newline}"));
        indent.push_str("  ");
    }
    for (name, value) in entries {
        text.push_str(&format!("{indent}{}: {}{newline}", name_text(name), quote(value)));
    }
    text
}

pub(super) fn flow_entries(path: &[&str], entries: &[(&str, &str)]) -> String {
    let mut text = entries
        .iter()
        .map(|(name, value)| format!("{}: {}", name_text(name), quote(value)))
        .collect::<Vec<_>>()
        .join(", ");
    for key in path.iter().rev() {
        text = format!("{key}: {{{text}}}");
    }
    text
}

/// A name written plain reads as that string in YAML 1.1 and 1.2: a word of letters, digits
/// and `_` that no schema resolves (`Y`, `on`, `null`, … are booleans or null in YAML 1.1).
pub(super) fn plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        )
}

fn name_text(name: &str) -> Cow<'_, str> {
    if plain_name(name) { Cow::Borrowed(name) } else { Cow::Owned(quote(name)) }
}

/// A double-quoted YAML scalar that reads back as exactly `value` in YAML 1.1 and 1.2: `"`,
/// `\` and every character outside both versions' printable set (or a line break to either)
/// escaped.
pub(super) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}' | '\u{10000}'..
                if !matches!(c, '\u{2028}' | '\u{2029}') =>
            {
                out.push(c)
            }
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}
