//! Plans the edits: from what the first reading kept, the byte ranges of the original to
//! replace or insert at — a value replaced in place, entries appended to a mapping with the
//! indentation of its keys (or as flow entries before its `}`), a null `env:` or
//! `variables:` given a mapping — in the file's own line breaks. What cannot be edited
//! without changing its meaning (an aliased `env`, a `<<` merge that may bring the key being
//! created, an empty block mapping) is refused here, with the reason.

use saphyr_parser::Event;

use super::checks::check_version;
use super::document::{Document, Kind, MapInfo, Node, Role};
use super::entries::{block_entries, flow_entries, quote, wanted};
use super::read::Positions;
use super::{BuildspecError, cannot};

/// Bytes `start..end` of the original are replaced by `with`.
#[derive(Debug)]
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) with: String,
}

pub(super) struct Planner<'a, 'd> {
    pub(super) text: &'a str,
    pub(super) at: Positions<'a>,
    pub(super) document: &'d Document<'a>,
    pub(super) edits: Vec<Edit>,
    pub(super) overridden: Vec<String>,
    /// The mapping whose new entries go first, and their events.
    pub(super) prepend: Option<(Role, Vec<Event<'a>>)>,
}

impl<'a> Planner<'a, '_> {
    pub(super) fn plan(&mut self, entries: &[(&'a str, &'a str)]) -> Result<(), BuildspecError> {
        let document = self.document;
        let root = &document.root;
        let Kind::Mapping(Some(info)) = &root.kind else {
            return Err(BuildspecError::NotAMapping);
        };
        check_version(info.version.as_ref())?;
        if entries.is_empty() {
            return Ok(());
        }
        if document.anchor_aliased(root) {
            return Err(cannot("(top level)", "the top-level mapping is anchored and aliased"));
        }
        let Some((env_key, env)) = &info.child else {
            if info.merge {
                return Err(cannot(
                    "env",
                    "no `env` key, and a `<<` merge at the top level may bring one that a new `env` would hide",
                ));
            }
            return self.add_entries(Role::Root, info, &["env", "variables"], entries, "env");
        };
        match &env.kind {
            Kind::Mapping(Some(env_info)) => {
                self.refuse_if_aliased(env, "env")?;
                let Some((vars_key, vars)) = &env_info.child else {
                    if env_info.merge {
                        return Err(cannot(
                            "env.variables",
                            "no `variables` key, and a `<<` merge in `env` may bring one that a new `variables` would hide",
                        ));
                    }
                    return self.add_entries(Role::Env, env_info, &["variables"], entries, "env.variables");
                };
                match &vars.kind {
                    Kind::Mapping(Some(vars_info)) => {
                        self.refuse_if_aliased(vars, "env.variables")?;
                        let mut new = Vec::new();
                        for (i, (name, value)) in entries.iter().enumerate() {
                            match &vars_info.existing[i] {
                                Some((key, old)) => {
                                    self.replace_value(vars_info.flow, key, old, name, value)?;
                                    self.overridden.push((*name).to_owned());
                                }
                                None => new.push((*name, *value)),
                            }
                        }
                        if new.is_empty() {
                            return Ok(());
                        }
                        self.add_entries(Role::Variables, vars_info, &[], &new, "env.variables")
                    }
                    _ if vars.is_null() => self.fill_null(env_info, vars_key, vars, &[], entries, "env.variables"),
                    Kind::Alias => Err(cannot(
                        "env.variables",
                        "`env.variables` is an alias (*): adding to it would change its anchor's other uses",
                    )),
                    _ => Err(BuildspecError::NotAMappingAt { key: "env.variables" }),
                }
            }
            _ if env.is_null() => self.fill_null(info, env_key, env, &["variables"], entries, "env"),
            Kind::Alias => {
                Err(cannot("env", "`env` is an alias (*): adding to it would change its anchor's other uses"))
            }
            _ => Err(BuildspecError::NotAMappingAt { key: "env" }),
        }
    }

    fn byte(&mut self, char: usize) -> usize {
        self.at.byte(char)
    }

    /// The line break the file uses (its first one), LF when it has none.
    fn newline(&self) -> &'static str {
        match self.text.find('\n') {
            Some(i) if i > 0 && self.text.as_bytes()[i - 1] == b'\r' => "\r\n",
            _ => "\n",
        }
    }

    /// Start of the line holding byte `at` (after a byte order mark on the first line).
    fn line_start(&self, at: usize) -> usize {
        let bom = if self.text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
        self.text[..at].rfind('\n').map_or(bom.min(at), |i| i + 1)
    }

    /// Where a new line goes after a token ending at `end` (characters): after the line the
    /// token ends on — or, for a block scalar, whose end is the start of the next line's
    /// content, at the start of that line. The flag says a line break must come first (the
    /// file's last line has none).
    fn after_line(&mut self, end: usize) -> (usize, bool) {
        let at = self.byte(end);
        let start = self.line_start(at);
        if self.text[start..at].chars().all(|c| c == ' ' || c == '\t') {
            return (start, false);
        }
        match self.text[at..].find('\n') {
            Some(i) => (at + i + 1, false),
            None => (self.text.len(), true),
        }
    }

    /// The spaces that put a new key where the key starting at `key` (characters) is.
    fn indent_of(&mut self, key: usize, path: &str) -> Result<String, BuildspecError> {
        let at = self.byte(key);
        let prefix = &self.text[self.line_start(at)..at];
        if prefix.chars().all(|c| c == ' ') {
            return Ok(prefix.to_owned());
        }
        if prefix.chars().all(|c| c == ' ' || c == '-') {
            return Ok(" ".repeat(prefix.len()));
        }
        Err(cannot(
            path,
            format!("the line of its last key starts with {prefix:?}; the editor indents with spaces only"),
        ))
    }

    /// The `:` right after a key ending at `key_end` (characters), if the key has one there.
    fn colon_after(&mut self, key_end: usize) -> Option<usize> {
        let at = self.byte(key_end);
        let rest = &self.text[at..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..].starts_with(':').then_some(at + skipped)
    }

    /// `env` or `env.variables` (`path`) anchored (&) and aliased (*) elsewhere: what is
    /// added to it would appear there too.
    fn refuse_if_aliased(&self, node: &Node<'_>, path: &str) -> Result<(), BuildspecError> {
        if self.document.anchor_aliased(node) {
            return Err(cannot(
                path,
                format!("`{path}` is anchored (&) and aliased (*) elsewhere, where the variables would appear too"),
            ));
        }
        Ok(())
    }

    fn guard_anchors(&self, node: &Node<'_>, path: &str) -> Result<(), BuildspecError> {
        if self.document.aliased(node.anchors.0..node.anchors.1) {
            return Err(cannot(path, "the value being replaced holds an anchor (&) that an alias (*) uses elsewhere"));
        }
        Ok(())
    }

    /// Replaces the value of an entry the buildspec has with the trigger's.
    fn replace_value(
        &mut self,
        flow: bool,
        key: &Node<'_>,
        old: &Node<'_>,
        name: &str,
        value: &str,
    ) -> Result<(), BuildspecError> {
        let path = format!("env.variables.{name}");
        self.guard_anchors(old, &path)?;
        let key_end = key.end.unwrap_or(key.start);
        let Some(colon) = self.colon_after(key_end) else {
            if flow && !old.token {
                // `{…, NAME}`: a key without value in a flow mapping.
                let at = self.byte(key_end);
                self.edits.push(Edit { start: at, end: at, with: format!(": {}", quote(value)) });
                return Ok(());
            }
            return Err(cannot(&path, "no `:` right after the name (an explicit `?` key, or no value)"));
        };
        let start = colon + 1;
        let end = match old.end {
            // A block scalar ends where the next line's content starts: keep those breaks.
            Some(end) => {
                let end = self.byte(end);
                start.max(self.text[..end].trim_end_matches([' ', '\t', '\r', '\n']).len())
            }
            None => start,
        };
        self.edits.push(Edit { start, end, with: format!(" {}", quote(value)) });
        Ok(())
    }

    /// Adds entries `path[0]: {path[1]: {…: {name: "value", …}}}` at the end of a mapping.
    fn add_entries(
        &mut self,
        role: Role,
        map: &MapInfo<'_>,
        path: &[&'a str],
        entries: &[(&'a str, &'a str)],
        at: &str,
    ) -> Result<(), BuildspecError> {
        if map.flow {
            let close = self.byte(map.close);
            let from = match map.end {
                Some(end) => self.byte(end),
                None => self.byte(map.open) + 1,
            };
            let separated = map.end.is_none() || has_separator(&self.text[from..close]);
            let before = self.text[..close].trim_end_matches([' ', '\t', '\r', '\n']);
            let prefix = if !separated {
                ", "
            } else if before.ends_with(',') {
                " "
            } else {
                ""
            };
            self.edits.push(Edit {
                start: close,
                end: close,
                with: format!("{prefix}{}", flow_entries(path, entries)),
            });
            return Ok(());
        }
        let newline = self.newline();
        let Some(last_key) = map.last_key else {
            return Err(cannot(at, "an empty block mapping"));
        };
        let (mut start, break_first) = self.after_line(map.end.unwrap_or(last_key));
        let mut indent = self.indent_of(last_key, at)?;
        if break_first && map.ends_in_block_scalar {
            // The mapping ends with a block scalar and the file with no line break: anything
            // after it would give that scalar a final line break. The entry goes first instead.
            let first = map.first_key.unwrap_or(last_key);
            indent = self.indent_of(first, at)?;
            let first = self.byte(first);
            start = self.line_start(first);
            if self.text[start..first].contains('-') {
                return Err(cannot(
                    at,
                    "the mapping ends with a block scalar at the end of the file, with no line break",
                ));
            }
            self.edits.push(Edit { start, end: start, with: block_entries(&indent, path, entries, newline) });
            self.prepend = Some((role, wanted(path, entries.iter().copied())));
            return Ok(());
        }
        let mut with = if break_first { newline.to_owned() } else { String::new() };
        with.push_str(&block_entries(&indent, path, entries, newline));
        self.edits.push(Edit { start, end: start, with });
        Ok(())
    }

    /// Gives a null `key:` (empty, `~`, `null`) the mapping `{path[0]: {…: {name: "value"}}}`.
    fn fill_null(
        &mut self,
        parent: &MapInfo<'_>,
        key: &Node<'_>,
        null: &Node<'_>,
        path: &[&str],
        entries: &[(&str, &str)],
        at: &str,
    ) -> Result<(), BuildspecError> {
        self.guard_anchors(null, at)?;
        let key_end = key.end.unwrap_or(key.start);
        let written = null.token;
        if parent.flow {
            let mapping = format!("{{{}}}", flow_entries(path, entries));
            if written {
                let (start, end) = (self.byte(null.start), self.byte(null.end.unwrap_or(null.start)));
                self.edits.push(Edit { start, end, with: mapping });
            } else if let Some(colon) = self.colon_after(key_end) {
                self.edits.push(Edit { start: colon + 1, end: colon + 1, with: format!(" {mapping}") });
            } else {
                let end = self.byte(key_end);
                self.edits.push(Edit { start: end, end, with: format!(": {mapping}") });
            }
            return Ok(());
        }
        let indent = format!("{}  ", self.indent_of(key.start, at)?);
        let mut after = key_end;
        if written {
            let (start, end) = (self.byte(null.start), self.byte(null.end.unwrap_or(null.start)));
            self.edits.push(Edit { start, end, with: String::new() });
            after = null.end.unwrap_or(key_end);
        }
        let (start, break_first) = self.after_line(after);
        let newline = self.newline();
        let mut text = if break_first { newline.to_owned() } else { String::new() };
        text.push_str(&block_entries(&indent, path, entries, newline));
        self.edits.push(Edit { start, end: start, with: text });
        Ok(())
    }
}

/// Whether the text between a flow mapping's last token and its `}` has a `,` (outside
/// comments), so that a new entry needs none.
fn has_separator(between: &str) -> bool {
    let mut comment = false;
    let mut previous = ' ';
    for c in between.chars() {
        match c {
            '\n' | '\r' => comment = false,
            '#' if previous.is_whitespace() => comment = true,
            ',' if !comment => return true,
            _ => {}
        }
        previous = c;
    }
    false
}
