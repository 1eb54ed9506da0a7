//! What the editor refuses outright, apart from the reading: line breaks that YAML 1.1 and
//! 1.2 (or this editor) read differently, checked on the raw text before parsing, and a
//! `version` that is not CodeBuild's `0.2`, checked on the node the reading kept.

use saphyr_parser::ScalarStyle;

use super::document::{Kind, Node};
use super::{BuildspecError, cannot};

/// Line breaks are found here as `\n`; YAML also breaks lines at a lone `\r`, and YAML 1.1
/// (not 1.2) at U+0085, U+2028 and U+2029: a file with those reads differently to the two, or
/// to this editor, so it is refused rather than guessed at.
pub(super) fn check_line_breaks(text: &str) -> Result<(), BuildspecError> {
    let bytes = text.as_bytes();
    if let Some(i) = bytes.iter().enumerate().position(|(i, b)| *b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
        let line = text[..i].matches('\n').count() + 1;
        return Err(cannot(
            &format!("line {line}"),
            "a carriage return not followed by a line feed (old Mac line break)",
        ));
    }
    if let Some((i, c)) = text.char_indices().find(|(_, c)| matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')) {
        let line = text[..i].matches('\n').count() + 1;
        return Err(cannot(
            &format!("line {line}"),
            format!("U+{:04X} is a line break to YAML 1.1 readers (CodeBuild's) but not to YAML 1.2 ones", c as u32),
        ));
    }
    Ok(())
}

pub(super) fn check_version(version: Option<&Node<'_>>) -> Result<(), BuildspecError> {
    let found = match version.map(|node| &node.kind) {
        None => "(none)".to_owned(),
        Some(Kind::Scalar { value, style, .. }) => {
            let ok = match style {
                ScalarStyle::Plain => {
                    value.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                        && value.parse::<f64>() == Ok(0.2)
                }
                _ => value == "0.2",
            };
            if ok {
                return Ok(());
            }
            match style {
                ScalarStyle::Plain => value.to_string(),
                _ => format!("{value:?}"),
            }
        }
        Some(Kind::Alias) => "(an alias)".to_owned(),
        Some(Kind::Sequence) => "(a list)".to_owned(),
        Some(Kind::Mapping(_)) => "(a mapping)".to_owned(),
    };
    Err(BuildspecError::Version { found })
}
