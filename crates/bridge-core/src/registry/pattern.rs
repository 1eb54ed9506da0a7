//! A rule's `match`: a project key, or a pattern where `*` stands for any run of characters
//! inside one `/`-separated segment, matched segment by segment without backtracking across
//! segments.

/// A `match` value: segments, each a literal or a glob with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    pub(super) segments: Vec<String>,
}

impl Pattern {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let segments: Vec<String> = text.split('/').map(str::to_owned).collect();
        let valid = !text.is_empty()
            && text.len() <= 200
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '*'))
            });
        if !valid {
            return Err(
                "a project key or pattern: segments of [A-Za-z0-9._+-] and `*`, separated by '/', at most 200 bytes"
                    .into(),
            );
        }
        Ok(Pattern { segments })
    }

    pub(super) fn is_exact(&self) -> bool {
        !self.segments.iter().any(|s| s.contains('*'))
    }

    /// The first segment when it has no `*`: patterns are indexed by it.
    pub(super) fn literal_head(&self) -> Option<&str> {
        self.segments.first().map(String::as_str).filter(|s| !s.contains('*'))
    }

    pub(super) fn matches(&self, key_segments: &[&str]) -> bool {
        self.segments.len() == key_segments.len()
            && self.segments.iter().zip(key_segments).all(|(p, k)| glob(p.as_bytes(), k.as_bytes()))
    }

    /// A key the pattern matches, to check a pattern rule's settings when it is loaded.
    /// Every `*` becomes `x`, never nothing: `*-devel` as `-devel` would not be a Pagure
    /// name (one starts with a letter, a digit or `_`), and a valid rule would be refused.
    pub(super) fn example(&self) -> String {
        self.segments.iter().map(|s| s.replace('*', "x")).collect::<Vec<_>>().join("/")
    }
}

/// `*` matches any run of bytes (inside one segment: keys are split on `/` first). Linear
/// in practice: the last `*` is the only backtracking point.
pub(super) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}
