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

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use sha2::{Digest, Sha256};

use crate::model::{BuildRequest, Cause};

/// Largest buildspec read (bytes).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Largest a buildspec may grow (bytes of scalars, plus one per node) with every alias
/// written out: it is never expanded here, but CodeBuild's reader may; an alias bomb is
/// refused, after counting, not expanding.
pub const MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;

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

/// The variables the pipeline is started with (never empty, so the pipeline declares them
/// all, and its CodeBuild action passes them on): enough for the report stage to find the
/// build request and the commit. `PAGURE_PR_ID` and `PAGURE_BRANCH_TO` stay in the buildspec
/// only, where they may be empty; the cause tells a PR number from a commit. `PAGURE_BRANCH`
/// too: the report stage does not need it, and a branch name is the PR author's choice
/// (`"`, `,`, `{` are allowed by git), which the templates would paste into the CodeBuild
/// action's JSON text. The work stage refuses any value these carry outside a character set
/// that needs no JSON escaping (`bridge_worker::check_pipeline_variables`).
pub const PIPELINE_VARIABLES: [&str; 5] =
    ["PAGURE_REQUEST_ID", "PAGURE_PROJECT", "PAGURE_REPO", "PAGURE_CAUSE", "PAGURE_COMMIT"];

/// The default value the pipelines declare for each of [`PIPELINE_VARIABLES`]: a run started
/// by hand ("Release change") carries it, and the report stage ignores that run.
pub const MANUAL_RUN: &str = "manual";

/// The variables a build gets, in this order. Empty values are kept so that every build
/// sees the same names (`PAGURE_BRANCH_TO` and `PAGURE_PR_ID` are empty for commit builds).
pub fn trigger_variables(request: &BuildRequest, commit: &str) -> Vec<(&'static str, String)> {
    let pr_id = match request.cause {
        Cause::PullRequest { id } => id.to_string(),
        Cause::Commit { .. } => String::new(),
    };
    vec![
        ("PAGURE_CAUSE", request.cause.as_trigger_value()),
        ("PAGURE_REPO", request.repo_url.clone()),
        ("PAGURE_BRANCH", request.branch.clone()),
        ("PAGURE_BRANCH_TO", request.branch_to.clone().unwrap_or_default()),
        ("PAGURE_COMMIT", commit.to_owned()),
        ("PAGURE_PR_ID", pr_id),
        ("PAGURE_PROJECT", request.project.target_fullname()),
        ("PAGURE_REQUEST_ID", request.request_id.clone()),
    ]
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

/// Line breaks are found here as `\n`; YAML also breaks lines at a lone `\r`, and YAML 1.1
/// (not 1.2) at U+0085, U+2028 and U+2029: a file with those reads differently to the two, or
/// to this editor, so it is refused rather than guessed at.
fn check_line_breaks(text: &str) -> Result<(), BuildspecError> {
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

/// Converts the parser's positions (characters) to byte offsets. Positions are asked for
/// mostly in increasing order, so a cursor that walks from the last one costs little.
#[derive(Debug)]
struct Positions<'a> {
    text: &'a str,
    ascii: bool,
    char: usize,
    byte: usize,
}

impl<'a> Positions<'a> {
    fn new(text: &'a str) -> Self {
        Positions { text, ascii: text.is_ascii(), char: 0, byte: 0 }
    }

    fn byte(&mut self, char: usize) -> usize {
        if self.ascii {
            return char.min(self.text.len());
        }
        while self.char < char {
            let Some(c) = self.text[self.byte..].chars().next() else { break };
            self.byte += c.len_utf8();
            self.char += 1;
        }
        while self.char > char {
            let Some(c) = self.text[..self.byte].chars().next_back() else { break };
            self.byte -= c.len_utf8();
            self.char -= 1;
        }
        self.byte
    }
}

/// What the first reading learnt about one node (scalar, alias or collection).
#[derive(Debug)]
struct Node<'a> {
    /// Where it starts (characters; a scalar's anchor and tag included, a block scalar's
    /// content after its header line) and where its last token ends, when it has one.
    start: usize,
    end: Option<usize>,
    /// Whether its last token is a block scalar (`|`, `>`): one that ends at the end of the
    /// file without a line break cannot be followed by anything without changing it.
    ends_in_block_scalar: bool,
    /// False for a null written as nothing (no text, no anchor, no tag).
    token: bool,
    /// Its own anchor (0: none), and the anchors defined inside it (ids `anchors.0..anchors.1`).
    anchor: usize,
    anchors: (usize, usize),
    kind: Kind<'a>,
}

#[derive(Debug)]
enum Kind<'a> {
    Scalar { value: Cow<'a, str>, style: ScalarStyle, tagged: bool },
    Alias,
    Sequence,
    Mapping(Option<Box<MapInfo<'a>>>),
}

impl Node<'_> {
    fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A null in both YAML 1.1 and 1.2: empty, `~` or `null` written plain and untagged.
    fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, style: ScalarStyle::Plain, tagged: false } if is_null(value))
    }
}

fn is_null(plain: &str) -> bool {
    matches!(plain, "" | "~" | "null" | "Null" | "NULL")
}

/// The role of a mapping this module may edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Env,
    Variables,
    Other,
}

/// What the first reading keeps of the top-level, `env` and `env.variables` mappings.
#[derive(Debug, Default)]
struct MapInfo<'a> {
    flow: bool,
    /// Its opening `{` and closing `}` (flow mappings), the end of its last token.
    open: usize,
    close: usize,
    end: Option<usize>,
    ends_in_block_scalar: bool,
    first_key: Option<usize>,
    last_key: Option<usize>,
    /// It has a `<<` merge key.
    merge: bool,
    /// Top level: `version`, and `env` as `child`. `env`: `variables` as `child`.
    /// `env.variables`: the entries named like an injected variable, in the order of those.
    version: Option<Node<'a>>,
    child: Option<(Node<'a>, Node<'a>)>,
    existing: Vec<Option<(Node<'a>, Node<'a>)>>,
}

/// A collection being read.
#[derive(Debug)]
struct Frame<'a> {
    role: Role,
    mapping: bool,
    flow: bool,
    start: usize,
    anchor: usize,
    anchors_from: usize,
    /// The reader's `expanded` before this collection.
    expanded_from: u64,
    end: Option<usize>,
    ends_in_block_scalar: bool,
    /// A mapping's key whose value is being read.
    key: Option<Node<'a>>,
    info: Option<Box<MapInfo<'a>>>,
}

/// The weight of an anchor whose node is still being read.
const OPEN: u64 = u64::MAX;

/// More anchors than any buildspec needs; the parser keeps every anchor's name, so this
/// bounds its memory.
const MAX_ANCHORS: usize = 10_000;

/// The first reading, one pass over the events: keeps the root node with the details of the
/// mappings that may be edited, how often each anchor is used, and the digest of the events
/// the edited text must have (these events, with the injected entries in their places).
struct Reader<'a, 'n> {
    at: Positions<'a>,
    entries: &'n [(&'n str, &'n str)],
    stack: Vec<Frame<'a>>,
    /// Uses of each anchor id by an alias (ids count definitions, from 1).
    alias_uses: Vec<u32>,
    last_anchor: usize,
    /// Size so far with every alias written out, and the size of each anchor's node
    /// (`OPEN` while it is being read).
    expanded: u64,
    weights: Vec<u64>,
    root: Option<Node<'a>>,
    expected: Stream,
    /// Entries to expect first in the mapping of this role rather than last.
    prepend: Option<(Role, Vec<Event<'n>>)>,
    /// The events being read are the value of the entry for `entries[.0]`, which the
    /// trigger's value replaces; `.1` is the depth of its mapping.
    replacing: Option<(usize, usize)>,
}

#[derive(Debug)]
struct Document<'a> {
    root: Node<'a>,
    alias_uses: Vec<u32>,
    expected: [u8; 32],
}

impl Document<'_> {
    fn aliased(&self, ids: std::ops::Range<usize>) -> bool {
        ids.into_iter().any(|id| self.alias_uses.get(id).is_some_and(|n| *n > 0))
    }
}

fn malformed(error: &saphyr_parser::ScanError) -> BuildspecError {
    BuildspecError::Malformed { line: Some(error.marker().line()), problem: error.info().to_owned() }
}

impl<'a, 'n> Reader<'a, 'n> {
    fn read(
        text: &'a str,
        entries: &'n [(&'n str, &'n str)],
        prepend: Option<(Role, Vec<Event<'n>>)>,
    ) -> Result<Document<'a>, BuildspecError> {
        let mut reader = Reader {
            prepend,
            at: Positions::new(text),
            entries,
            stack: Vec::new(),
            alias_uses: Vec::new(),
            last_anchor: 0,
            expanded: 0,
            weights: Vec::new(),
            root: None,
            expected: Stream::default(),
            replacing: None,
        };
        let mut documents = 0;
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| malformed(&e))?;
            let kept = reader.replacing.is_none();
            match &event {
                Event::Scalar(..) if kept && !entries.is_empty() => {
                    if let Some(path) = reader.null_to_fill(&event) {
                        // `env:` or `variables:` null: the edited text has the mapping there.
                        reader.expected.event(&event, false)?;
                        reader.expected.event(&Event::MappingStart(0, None), true)?;
                        reader.expected.events(wanted(path, entries.iter().copied()))?;
                        reader.expected.event(&Event::MappingEnd, true)?;
                    } else {
                        reader.expected.event(&event, true)?;
                    }
                }
                Event::MappingStart(..) if kept && reader.prepend.is_some() => {
                    reader.expected.event(&event, true)?;
                    let role = reader.child_role(true);
                    if let Some((_, first)) = reader.prepend.take_if(|(r, _)| *r == role) {
                        reader.expected.events(first)?;
                        reader.prepend = Some((role, Vec::new()));
                    }
                }
                Event::MappingEnd if kept && !entries.is_empty() => {
                    let added = reader.stack.last().and_then(|frame| Some((frame.role, frame.info.as_ref()?)));
                    let prepended =
                        reader.prepend.as_ref().is_some_and(|(role, _)| added.is_some_and(|(r, _)| r == *role));
                    let added: Vec<Event<'_>> = match added {
                        _ if prepended => Vec::new(),
                        Some((Role::Root, info)) if info.child.is_none() => {
                            wanted(&["env", "variables"], entries.iter().copied())
                        }
                        Some((Role::Env, info)) if info.child.is_none() => {
                            wanted(&["variables"], entries.iter().copied())
                        }
                        Some((Role::Variables, info)) => wanted(
                            &[],
                            entries.iter().zip(&info.existing).filter(|(_, e)| e.is_none()).map(|(entry, _)| *entry),
                        ),
                        _ => Vec::new(),
                    };
                    reader.expected.events(added)?;
                    reader.expected.event(&event, true)?;
                }
                _ => reader.expected.event(&event, kept)?,
            }
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(BuildspecError::MultipleDocuments);
                    }
                }
                Event::Alias(id) => {
                    let slot = reader.anchor_slot(id)?;
                    *slot = slot.saturating_add(1);
                    match reader.weights[id] {
                        OPEN => {
                            return Err(cannot(
                                "(aliases)",
                                "an alias inside the node of its own anchor (a recursive structure)",
                            ));
                        }
                        weight => reader.grow(weight)?,
                    }
                    let node = reader.leaf(span, 0, Kind::Alias);
                    reader.complete(node)?;
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let anchors_from = reader.define(anchor)?;
                    let weight = value.len() as u64 + 1;
                    reader.grow(weight)?;
                    if anchor != 0 {
                        reader.weights[anchor] = weight;
                    }
                    let token = !(style == ScalarStyle::Plain && value.is_empty() && anchor == 0 && tag.is_none());
                    let kind = Kind::Scalar { value, style, tagged: tag.is_some() };
                    let mut node = reader.leaf(span, anchor, kind);
                    node.anchors.0 = anchors_from;
                    node.ends_in_block_scalar = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded);
                    node.token = token;
                    if matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) {
                        // The parser's span runs on over blanks and a comment after the quote.
                        node.end = Some(reader.quoted_end(span, style == ScalarStyle::DoubleQuoted));
                    }
                    if !token {
                        // A null written as nothing has no token; the parser places it at the
                        // `:` of its key (block) or somewhere near it (flow): the `:` counts as
                        // its end, anything else as no position.
                        let at = reader.at.byte(span.start.index());
                        node.end = text[at..].starts_with(':').then_some(span.start.index() + 1);
                    }
                    reader.complete(node)?;
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    let mapping = matches!(event, Event::MappingStart(..));
                    let anchors_from = reader.define(anchor)?;
                    let expanded_from = reader.expanded;
                    reader.grow(1)?;
                    if anchor != 0 {
                        reader.weights[anchor] = OPEN;
                    }
                    let role = reader.child_role(mapping);
                    // A block collection's start event has an empty span; a flow one spans `{`/`[`.
                    let flow = span.end.index() > span.start.index();
                    let info = (role != Role::Other).then(|| {
                        Box::new(MapInfo {
                            flow,
                            open: span.start.index(),
                            existing: if role == Role::Variables {
                                entries.iter().map(|_| None).collect()
                            } else {
                                Vec::new()
                            },
                            ..MapInfo::default()
                        })
                    });
                    reader.stack.push(Frame {
                        role,
                        mapping,
                        flow,
                        start: span.start.index(),
                        anchor,
                        anchors_from,
                        expanded_from,
                        end: None,
                        ends_in_block_scalar: false,
                        key: None,
                        info,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = reader.stack.pop() else {
                        return Err(BuildspecError::Malformed {
                            line: Some(span.start.line()),
                            problem: "unbalanced collection".into(),
                        });
                    };
                    if frame.anchor != 0 {
                        reader.weights[frame.anchor] = reader.expanded - frame.expanded_from;
                    }
                    let info = frame.info.map(|mut info| {
                        info.close = span.start.index();
                        info.end = frame.end;
                        info.ends_in_block_scalar = frame.ends_in_block_scalar;
                        info
                    });
                    let node = Node {
                        start: frame.start,
                        // A flow collection ends with its `]` or `}` (the parser's span runs on
                        // over blanks and a comment after it).
                        end: if frame.flow { Some(span.start.index() + 1) } else { frame.end },
                        ends_in_block_scalar: !frame.flow && frame.ends_in_block_scalar,
                        token: true,
                        anchor: frame.anchor,
                        anchors: (frame.anchors_from, reader.last_anchor + 1),
                        kind: if frame.mapping { Kind::Mapping(info) } else { Kind::Sequence },
                    };
                    reader.complete(node)?;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        let root = reader.root.ok_or(BuildspecError::NotAMapping)?;
        Ok(Document { root, alias_uses: reader.alias_uses, expected: reader.expected.finish() })
    }

    /// For a null scalar that is the value of the top level's `env` or of `env.variables`:
    /// the keys of the mapping the edited text has in its place.
    fn null_to_fill(&self, event: &Event<'_>) -> Option<&'static [&'static str]> {
        let Event::Scalar(value, ScalarStyle::Plain, _, None) = event else { return None };
        let parent = self.stack.last()?;
        let key = parent.key.as_ref()?.scalar()?;
        match (parent.role, key) {
            _ if !is_null(value) => None,
            (Role::Root, "env") => Some(&["variables"]),
            (Role::Env, "variables") => Some(&[]),
            _ => None,
        }
    }

    fn anchor_slot(&mut self, id: usize) -> Result<&mut u32, BuildspecError> {
        if id > MAX_ANCHORS {
            return Err(cannot("(anchors)", format!("more than {MAX_ANCHORS} anchors (&)")));
        }
        if self.alias_uses.len() <= id {
            self.alias_uses.resize(id + 1, 0);
            self.weights.resize(id + 1, 0);
        }
        Ok(&mut self.alias_uses[id])
    }

    /// Where a quoted scalar's closing quote ends (characters), within its span.
    fn quoted_end(&mut self, span: Span, double: bool) -> usize {
        let quote = if double { '"' } else { '\'' };
        let from = self.at.byte(span.start.index());
        let mut chars = self.at.text[from..].chars().take(span.end.index() - span.start.index()).enumerate().peekable();
        // Past the properties (anchor, tag) to the opening quote.
        if !chars.by_ref().any(|(_, c)| c == quote) {
            return span.end.index();
        }
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if double => {
                    chars.next();
                }
                c if c == quote => {
                    // `''` is a quote inside a single-quoted scalar.
                    if !double && chars.peek().is_some_and(|(_, next)| *next == '\'') {
                        chars.next();
                        continue;
                    }
                    return span.start.index() + i + 1;
                }
                _ => {}
            }
        }
        span.end.index()
    }

    fn grow(&mut self, by: u64) -> Result<(), BuildspecError> {
        self.expanded = self.expanded.saturating_add(by);
        if self.expanded > MAX_EXPANDED_BYTES as u64 {
            return Err(BuildspecError::Expands);
        }
        Ok(())
    }

    /// Records an anchor definition; returns the first id a node starting here may define.
    fn define(&mut self, anchor: usize) -> Result<usize, BuildspecError> {
        let from = self.last_anchor + 1;
        if anchor != 0 {
            self.anchor_slot(anchor)?;
            self.last_anchor = self.last_anchor.max(anchor);
        }
        Ok(from)
    }

    fn leaf(&self, span: Span, anchor: usize, kind: Kind<'a>) -> Node<'a> {
        Node {
            start: span.start.index(),
            end: Some(span.end.index()),
            ends_in_block_scalar: false,
            token: true,
            anchor,
            anchors: (self.last_anchor + 1, self.last_anchor + 1),
            kind,
        }
    }

    /// The role of a collection starting now, from its parent's role and key.
    fn child_role(&self, mapping: bool) -> Role {
        let Some(parent) = self.stack.last() else {
            return if mapping { Role::Root } else { Role::Other };
        };
        let key = parent.key.as_ref().and_then(Node::scalar);
        match (mapping, parent.role, key) {
            (true, Role::Root, Some("env")) => Role::Env,
            (true, Role::Env, Some("variables")) => Role::Variables,
            _ => Role::Other,
        }
    }

    fn complete(&mut self, node: Node<'a>) -> Result<(), BuildspecError> {
        let entries = self.entries;
        let depth = self.stack.len();
        let Some(parent) = self.stack.last_mut() else {
            if self.root.is_some() {
                return Err(BuildspecError::MultipleDocuments);
            }
            self.root = Some(node);
            return Ok(());
        };
        if let Some(end) = node.end
            && parent.end.is_none_or(|e| end >= e)
        {
            parent.end = Some(end);
            parent.ends_in_block_scalar = node.ends_in_block_scalar;
        }
        if !parent.mapping {
            return Ok(());
        }
        let role = parent.role;
        let Some(key) = parent.key.take() else {
            if let Some(info) = parent.info.as_mut() {
                info.first_key.get_or_insert(node.start);
                info.last_key = Some(node.start);
            }
            if role == Role::Variables
                && let Some(name) = node.scalar()
                && let Some(i) = entries.iter().position(|(n, _)| *n == name)
            {
                // The value that follows is replaced by the trigger's.
                self.replacing = Some((i, depth));
            }
            parent.key = Some(node);
            return Ok(());
        };
        if let Some((i, _)) = self.replacing.take_if(|(_, at)| *at == depth) {
            let value = Event::Scalar(Cow::Borrowed(entries[i].1), ScalarStyle::DoubleQuoted, 0, None);
            self.expected.event(&value, true)?;
        }
        let Some(info) = parent.info.as_mut() else { return Ok(()) };
        let concerned = |name: &str| match role {
            Role::Root => name == "version" || name == "env",
            Role::Env => name == "variables",
            Role::Variables => entries.iter().any(|(n, _)| *n == name),
            Role::Other => false,
        };
        let path = |name: &str| match role {
            Role::Root => name.to_owned(),
            Role::Env => format!("env.{name}"),
            _ => format!("env.variables.{name}"),
        };
        let name = match &key.kind {
            Kind::Scalar { value, style, tagged } => {
                if *tagged && concerned(value) {
                    return Err(cannot(
                        &path(value),
                        "the key has a tag; whether it is that string depends on the reader",
                    ));
                }
                if *style == ScalarStyle::Plain && value == "<<" && !tagged {
                    info.merge = true;
                }
                value.as_ref()
            }
            Kind::Alias => {
                return Err(cannot(&path("*"), "an alias used as a key: it may stand for a key the editor must find"));
            }
            _ => return Ok(()),
        };
        if !concerned(name) {
            return Ok(());
        }
        let duplicate = || BuildspecError::Duplicate { key: path(name) };
        match role {
            Role::Root if name == "version" => {
                if info.version.replace(node).is_some() {
                    return Err(duplicate());
                }
            }
            Role::Root | Role::Env => {
                if info.child.is_some() {
                    return Err(duplicate());
                }
                info.child = Some((key, node));
            }
            _ => {
                let Some(i) = entries.iter().position(|(n, _)| *n == name) else { return Ok(()) };
                if info.existing[i].is_some() {
                    return Err(duplicate());
                }
                info.existing[i] = Some((key, node));
            }
        }
        Ok(())
    }
}

/// Bytes `start..end` of the original are replaced by `with`.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    with: String,
}

struct Planner<'a, 'd> {
    text: &'a str,
    at: Positions<'a>,
    document: &'d Document<'a>,
    edits: Vec<Edit>,
    overridden: Vec<String>,
    /// The mapping whose new entries go first, and their events.
    prepend: Option<(Role, Vec<Event<'a>>)>,
}

impl<'a> Planner<'a, '_> {
    fn plan(&mut self, entries: &[(&'a str, &'a str)]) -> Result<(), BuildspecError> {
        let document = self.document;
        let root = &document.root;
        let Kind::Mapping(Some(info)) = &root.kind else {
            return Err(BuildspecError::NotAMapping);
        };
        check_version(info.version.as_ref())?;
        if entries.is_empty() {
            return Ok(());
        }
        if root.anchor != 0 && document.aliased(root.anchor..root.anchor + 1) {
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
                if env.anchor != 0 && document.aliased(env.anchor..env.anchor + 1) {
                    return Err(cannot(
                        "env",
                        "`env` is anchored (&) and aliased (*) elsewhere, where the variables would appear too",
                    ));
                }
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
                        if vars.anchor != 0 && document.aliased(vars.anchor..vars.anchor + 1) {
                            return Err(cannot(
                                "env.variables",
                                "`env.variables` is anchored (&) and aliased (*) elsewhere, where the variables would appear too",
                            ));
                        }
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

/// The events of entries `path[0]: {path[1]: {…: {name: "value", …}}}` as written here.
fn wanted<'e>(path: &[&'e str], entries: impl Iterator<Item = (&'e str, &'e str)>) -> Vec<Event<'e>> {
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

fn block_entries(indent: &str, path: &[&str], entries: &[(&str, &str)], newline: &str) -> String {
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

fn flow_entries(path: &[&str], entries: &[(&str, &str)]) -> String {
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
fn plain_name(name: &str) -> bool {
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
fn quote(value: &str) -> String {
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

fn check_version(version: Option<&Node<'_>>) -> Result<(), BuildspecError> {
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

/// Maps the anchor ids of one event stream to the order of their definitions (anchors of
/// replaced values left out), so that aliases compare as references.
#[derive(Debug, Default)]
struct Anchors {
    ordinal: Vec<u32>,
    defined: u32,
}

impl Anchors {
    fn define(&mut self, id: usize, kept: bool) -> Result<u32, BuildspecError> {
        if id == 0 {
            return Ok(0);
        }
        if id > MAX_ANCHORS {
            return Err(cannot("(anchors)", format!("more than {MAX_ANCHORS} anchors (&)")));
        }
        if self.ordinal.len() <= id {
            self.ordinal.resize(id + 1, 0);
        }
        let ordinal = if kept {
            self.defined += 1;
            self.defined
        } else {
            u32::MAX
        };
        self.ordinal[id] = ordinal;
        Ok(ordinal)
    }

    fn alias(&self, id: usize) -> u32 {
        self.ordinal.get(id).copied().unwrap_or(u32::MAX - 1)
    }
}

/// A SHA-256 digest of an event stream, in a form where two streams have the same digest
/// exactly when they have the same events: scalars with their value, style and tag, and
/// anchors and aliases as the order of the anchor's definition (an alias is compared as a
/// reference, never expanded). The self-check compares the digest the original's events
/// plus the injected entries must have with the edited text's: one parser at a time, no
/// event kept.
#[derive(Debug, Default)]
struct Stream {
    hash: Sha256,
    anchors: Anchors,
}

impl Stream {
    fn bytes(&mut self, bytes: &[u8]) {
        self.hash.update((bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
    }

    fn properties(&mut self, anchor: usize, tag: Option<&Tag>, kept: bool) -> Result<(), BuildspecError> {
        let ordinal = self.anchors.define(anchor, kept)?;
        self.hash.update(ordinal.to_le_bytes());
        match tag {
            None => self.hash.update([0]),
            Some(tag) => {
                self.hash.update([1]);
                self.bytes(tag.handle.as_bytes());
                self.bytes(tag.suffix.as_bytes());
            }
        }
        Ok(())
    }

    /// Adds an event (`kept`), or only notes the anchor it defines as left out.
    fn event(&mut self, event: &Event<'_>, kept: bool) -> Result<(), BuildspecError> {
        if !kept {
            if let Event::Scalar(_, _, anchor, _) | Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) =
                event
            {
                self.anchors.define(*anchor, false)?;
            }
            return Ok(());
        }
        match event {
            Event::Nothing => {}
            Event::StreamStart => self.hash.update([1]),
            Event::StreamEnd => self.hash.update([2]),
            Event::DocumentStart(explicit) => self.hash.update([3, u8::from(*explicit)]),
            Event::DocumentEnd => self.hash.update([4]),
            Event::Alias(id) => {
                self.hash.update([5]);
                self.hash.update(self.anchors.alias(*id).to_le_bytes());
            }
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => 0,
                    ScalarStyle::SingleQuoted => 1,
                    ScalarStyle::DoubleQuoted => 2,
                    ScalarStyle::Literal => 3,
                    ScalarStyle::Folded => 4,
                };
                self.hash.update([6, style]);
                self.properties(*anchor, tag.as_deref(), true)?;
                self.bytes(value.as_bytes());
            }
            Event::SequenceStart(anchor, tag) => {
                self.hash.update([7]);
                self.properties(*anchor, tag.as_deref(), true)?;
            }
            Event::SequenceEnd => self.hash.update([8]),
            Event::MappingStart(anchor, tag) => {
                self.hash.update([9]);
                self.properties(*anchor, tag.as_deref(), true)?;
            }
            Event::MappingEnd => self.hash.update([10]),
        }
        Ok(())
    }

    fn events(&mut self, events: Vec<Event<'_>>) -> Result<(), BuildspecError> {
        events.iter().try_for_each(|event| self.event(event, true))
    }

    fn finish(self) -> [u8; 32] {
        self.hash.finalize().into()
    }
}

/// The digest of the edited text's events; it must parse as one document like the original.
fn digest_of(edited: &str) -> Result<[u8; 32], BuildspecError> {
    let mut stream = Stream::default();
    for item in Parser::new_from_str(edited) {
        let (event, _) = item.map_err(|e| {
            cannot(
                "(self-check)",
                format!(
                    "the edited buildspec does not parse (line {}: {}), so it is not used",
                    e.marker().line(),
                    e.info()
                ),
            )
        })?;
        stream.event(&event, true)?;
    }
    Ok(stream.finish())
}

#[cfg(test)]
mod tests;
