//! What the first reading keeps of a buildspec: the root node, the details of the only
//! mappings the editor may change (the top level, `env`, `env.variables`) with the positions
//! of their keys and values, and how often each anchor is aliased. The editor plans its
//! edits from this alone; no event is kept.

use std::borrow::Cow;

use saphyr_parser::ScalarStyle;

/// What the first reading learnt about one node (scalar, alias or collection).
#[derive(Debug)]
pub(super) struct Node<'a> {
    /// Where it starts (characters; a scalar's anchor and tag included, a block scalar's
    /// content after its header line) and where its last token ends, when it has one.
    pub(super) start: usize,
    pub(super) end: Option<usize>,
    /// Whether its last token is a block scalar (`|`, `>`): one that ends at the end of the
    /// file without a line break cannot be followed by anything without changing it.
    pub(super) ends_in_block_scalar: bool,
    /// False for a null written as nothing (no text, no anchor, no tag).
    pub(super) token: bool,
    /// Its own anchor (0: none), and the anchors defined inside it (ids `anchors.0..anchors.1`).
    pub(super) anchor: usize,
    pub(super) anchors: (usize, usize),
    pub(super) kind: Kind<'a>,
}

#[derive(Debug)]
pub(super) enum Kind<'a> {
    Scalar { value: Cow<'a, str>, style: ScalarStyle, tagged: bool },
    Alias,
    Sequence,
    Mapping(Option<Box<MapInfo<'a>>>),
}

impl Node<'_> {
    pub(super) fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A null in both YAML 1.1 and 1.2: empty, `~` or `null` written plain and untagged.
    pub(super) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, style: ScalarStyle::Plain, tagged: false } if is_null(value))
    }
}

pub(super) fn is_null(plain: &str) -> bool {
    matches!(plain, "" | "~" | "null" | "Null" | "NULL")
}

/// The role of a mapping this module may edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Root,
    Env,
    Variables,
    Other,
}

/// What the first reading keeps of the top-level, `env` and `env.variables` mappings.
#[derive(Debug, Default)]
pub(super) struct MapInfo<'a> {
    pub(super) flow: bool,
    /// Its opening `{` and closing `}` (flow mappings), the end of its last token.
    pub(super) open: usize,
    pub(super) close: usize,
    pub(super) end: Option<usize>,
    pub(super) ends_in_block_scalar: bool,
    pub(super) first_key: Option<usize>,
    pub(super) last_key: Option<usize>,
    /// It has a `<<` merge key.
    pub(super) merge: bool,
    /// Top level: `version`, and `env` as `child`. `env`: `variables` as `child`.
    /// `env.variables`: the entries named like an injected variable, in the order of those.
    pub(super) version: Option<Node<'a>>,
    pub(super) child: Option<(Node<'a>, Node<'a>)>,
    pub(super) existing: Vec<Option<(Node<'a>, Node<'a>)>>,
}

/// What the first reading gives the editor: the root node, how often each anchor id is
/// aliased, and the digest the edited text must have.
#[derive(Debug)]
pub(super) struct Document<'a> {
    pub(super) root: Node<'a>,
    pub(super) alias_uses: Vec<u32>,
    pub(super) expected: [u8; 32],
}

impl Document<'_> {
    pub(super) fn aliased(&self, ids: std::ops::Range<usize>) -> bool {
        ids.into_iter().any(|id| self.alias_uses.get(id).is_some_and(|n| *n > 0))
    }

    /// Whether `node` itself is anchored (&) and that anchor aliased (*) elsewhere, where
    /// anything added to it would appear too.
    pub(super) fn anchor_aliased(&self, node: &Node<'_>) -> bool {
        node.anchor != 0 && self.aliased(node.anchor..node.anchor + 1)
    }
}
