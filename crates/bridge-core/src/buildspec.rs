//! Injects the trigger into a CodeBuild buildspec as `env.variables`, by editing its text.
//!
//! The buildspec always comes from the target project's default branch (an untrusted pull
//! request must not change the build); this module only adds the trigger's variables to it,
//! and must not change what anything else in it means, to any YAML reader. CodeBuild reads
//! buildspecs the YAML 1.1 way (its reference writes `git-credential-helper: no | yes`), so
//! the file is never parsed and written out again: a YAML 1.2 writer drops the quotes that
//! keep `"yes"`, `"off"`, `"1:20"`, `"1_000"` or `"2001-12-14"` strings for a 1.1 reader.
//! Instead the user's bytes are kept — comments, anchors and aliases, `<<` merges, quoting,
//! key order, layout, line endings (LF or CRLF), a byte order mark — and only the trigger's
//! entries are written into the text: appended to `env.variables` with the indentation of
//! its keys (or to a flow mapping `{…}` as flow entries), with `env:` and `variables:`
//! created when absent or null, or, for a name the buildspec already has, in place of that
//! entry's value. Values are always double-quoted and escaped and names are plain `PAGURE_*`
//! words: strings to every reader.
//!
//! The text is read as a stream of parser events with source positions (`saphyr-parser`,
//! safe Rust); aliases are never expanded: an alias bomb is refused after counting what it
//! would expand to (`MAX_EXPANDED_BYTES`), and the number of anchors is bounded, so any
//! buildspec up to `MAX_INPUT_BYTES` is read in bounded time and memory (figures:
//! `cargo bench -p bridge-core --bench buildspec`). Nothing keeps the events: the first
//! reading notes the positions of the few nodes that matter and, on the way, the SHA-256
//! digest of the events the edited text must have (the original's, with the injected
//! entries in their places; anchors and aliases as references). The edited text is then
//! parsed again and must have exactly that digest, or it is not used. So is a layout the
//! editor cannot edit without changing its meaning: more than one document, `env` or
//! `env.variables` written as an alias or anchored and aliased elsewhere, a `<<` merge that
//! may carry the `env` or `variables` being created, explicit `?` keys, tagged or aliased
//! keys where `env`/`variables` are looked up, tab-indented lines, line breaks YAML 1.1 and
//! 1.2 disagree on. The error says why.
//!
//! The parts, in the order an injection uses them:
//! - `variables`: the trigger's variables (names, order, the pipeline's subset);
//! - `checks`: what is refused before or apart from the reading (line breaks YAML 1.1 and
//!   1.2 disagree on, a `version` other than 0.2);
//! - `read`: the first reading, one pass over the parser's events with their positions, with
//!   the limits on aliases and anchors; it keeps a `document` (the root node and the few
//!   mappings the editor may change) and the digest the edited text must have;
//! - `edit`: plans the text edits (replace a value, append entries, fill a null), with the
//!   file's own indentation and line breaks;
//! - `entries`: the injected entries as YAML text (block and flow) and as the events they
//!   must read as; names plain only where every reader takes them as strings;
//! - `digest`: the SHA-256 digest of an event stream that the self-check compares.

mod checks;
mod digest;
mod document;
mod edit;
mod entries;
mod read;
mod variables;

pub use variables::{MANUAL_RUN, PIPELINE_VARIABLES, trigger_variables};

use checks::check_line_breaks;
use digest::digest_of;
use edit::Planner;
use read::{Positions, Reader};

/// Largest buildspec read (bytes).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Largest a buildspec may grow (bytes of scalars, plus one per node) with every alias
/// written out: it is never expanded here, but CodeBuild's reader may; an alias bomb is
/// refused, after counting, not expanding.
pub const MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;

/// More anchors than any buildspec needs; the parser keeps every anchor's name, so this
/// bounds its memory.
const MAX_ANCHORS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildspecError {
    #[error("the buildspec is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    #[error("the buildspec's aliases (*) expand it to more than {MAX_EXPANDED_BYTES} bytes (an alias bomb)")]
    Expands,
    #[error("the buildspec is not valid YAML{at}: {problem}", at = .line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Malformed { line: Option<usize>, problem: String },
    #[error("the buildspec is not a mapping of keys (version, env, phases, …) at its top level")]
    NotAMapping,
    #[error("the buildspec holds more than one YAML document (`---`); CodeBuild reads one")]
    MultipleDocuments,
    #[error("the buildspec has version {found}; CodeBuild buildspecs must say `version: 0.2`")]
    Version { found: String },
    #[error("the buildspec's `{key}` is not a mapping, so variables cannot be added to it")]
    NotAMappingAt { key: &'static str },
    #[error("the buildspec has the key `{key}` twice (duplicate key)")]
    Duplicate { key: String },
    #[error("the buildspec cannot be edited without changing what it means, at `{at}`: {reason}")]
    CannotEdit { at: String, reason: String },
}

/// The result of an injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub text: String,
    /// Names the buildspec's own `env.variables` mapping had (as explicit keys) whose values
    /// the trigger's replaced.
    pub overridden: Vec<String>,
}

/// Adds `variables` under `env.variables` (creating `env` and `variables` when absent or
/// null) by editing the text; nothing else in it changes. On a name clash the trigger's value
/// replaces the buildspec's, in the position the buildspec gave the name. A name given twice
/// takes its last value.
pub fn inject(text: &str, variables: &[(&str, String)]) -> Result<Injected, BuildspecError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(BuildspecError::TooLarge);
    }
    check_line_breaks(text)?;
    let mut entries: Vec<(&str, &str)> = Vec::with_capacity(variables.len());
    for (name, value) in variables {
        match entries.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => entries.push((name, value)),
        }
    }
    let document = Reader::read(text, &entries, None)?;
    let mut planner = Planner {
        text,
        at: Positions::new(text),
        document: &document,
        edits: Vec::new(),
        overridden: Vec::new(),
        prepend: None,
    };
    planner.plan(&entries)?;
    let Planner { mut edits, overridden, prepend, .. } = planner;
    // Entries that go first in their mapping: the events they must read as are there too.
    let expected = match prepend {
        Some(prepend) => Reader::read(text, &entries, Some(prepend))?.expected,
        None => document.expected,
    };
    edits.sort_by_key(|edit| edit.start);
    let mut out = String::with_capacity(text.len() + edits.iter().map(|e| e.with.len()).sum::<usize>());
    let mut copied = 0;
    for edit in &edits {
        if edit.start < copied {
            return Err(cannot("env.variables", "two edits overlap"));
        }
        out.push_str(&text[copied..edit.start]);
        out.push_str(&edit.with);
        copied = edit.end;
    }
    out.push_str(&text[copied..]);
    if digest_of(&out)? != expected {
        return Err(cannot(
            "(self-check)",
            "the edited buildspec does not read back as the original plus the variables, so it is not used",
        ));
    }
    Ok(Injected { text: out, overridden })
}

fn cannot(at: &str, reason: impl Into<String>) -> BuildspecError {
    BuildspecError::CannotEdit { at: at.to_owned(), reason: reason.into() }
}

#[cfg(test)]
mod tests;
