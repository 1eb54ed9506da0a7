//! The first reading: one pass over the parser's events (`saphyr-parser`, with source
//! positions), never expanding an alias. On the way it counts what aliases would expand to
//! (`MAX_EXPANDED_BYTES`) and bounds the anchors (`MAX_ANCHORS`), notes the positions of the
//! nodes the editor needs (a [`Document`]), refuses what cannot be edited safely (duplicate,
//! tagged or aliased keys where `env`/`variables` are looked up), and feeds the digest the
//! edited text must have: these events, with the injected entries in their places.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::digest::Stream;
use super::document::{Document, Kind, MapInfo, Node, Role, is_null};
use super::entries::wanted;
use super::{BuildspecError, MAX_ANCHORS, MAX_EXPANDED_BYTES, cannot};

/// Converts the parser's positions (characters) to byte offsets. Positions are asked for
/// mostly in increasing order, so a cursor that walks from the last one costs little.
#[derive(Debug)]
pub(super) struct Positions<'a> {
    text: &'a str,
    ascii: bool,
    char: usize,
    byte: usize,
}

impl<'a> Positions<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Positions { text, ascii: text.is_ascii(), char: 0, byte: 0 }
    }

    pub(super) fn byte(&mut self, char: usize) -> usize {
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

/// The first reading, one pass over the events: keeps the root node with the details of the
/// mappings that may be edited, how often each anchor is used, and the digest of the events
/// the edited text must have (these events, with the injected entries in their places).
pub(super) struct Reader<'a, 'n> {
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

fn malformed(error: &saphyr_parser::ScanError) -> BuildspecError {
    BuildspecError::Malformed { line: Some(error.marker().line()), problem: error.info().to_owned() }
}

impl<'a, 'n> Reader<'a, 'n> {
    pub(super) fn read(
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
