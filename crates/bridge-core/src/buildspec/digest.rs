//! The self-check's digest: a SHA-256 digest of an event stream in which two streams agree
//! exactly when they have the same events (anchors and aliases compared as references, never
//! expanded). The first reading computes the digest the edited text must have; the edited
//! text is parsed again and must match, or it is not used.

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use sha2::{Digest, Sha256};

use super::{BuildspecError, MAX_ANCHORS, cannot};

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
pub(super) struct Stream {
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
    pub(super) fn event(&mut self, event: &Event<'_>, kept: bool) -> Result<(), BuildspecError> {
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

    pub(super) fn events(&mut self, events: Vec<Event<'_>>) -> Result<(), BuildspecError> {
        events.iter().try_for_each(|event| self.event(event, true))
    }

    pub(super) fn finish(self) -> [u8; 32] {
        self.hash.finalize().into()
    }
}

/// The digest of the edited text's events; it must parse as one document like the original.
pub(super) fn digest_of(edited: &str) -> Result<[u8; 32], BuildspecError> {
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
