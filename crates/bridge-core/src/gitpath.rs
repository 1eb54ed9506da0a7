//! Git's own rules for the names in a tree, so that the archive never holds a name that git
//! itself would refuse to check out.
//!
//! Git accepts a push of any tree unless `receive.fsckObjects` is on (it is off by default),
//! so a pull request can hold entries named `zz/../buildspec.yml`, `..`, `.git` or `.GIT.`:
//! names no git client writes, which an extractor turns into a path outside the folder, a
//! replacement of the injected buildspec, or a repository with its own hooks and config.
//! These checks are ported from git (github.com/git/git, read at commit 1a3e64c6, 2026-08):
//!
//! - fsck.c `fsck_tree`: a tree entry's name is not empty, `.` or `..`, holds no `/`
//!   (`fullPathname`), and is no `.git` look-alike (`hasDotgit`), also after any `\`; a
//!   `.gitmodules` look-alike is not a link (`gitmodulesSymlink`);
//! - read-cache.c `verify_path` / `verify_dotfile`: the same per path component, `.git` in any
//!   case;
//! - path.c `is_ntfs_dotgit` / `is_ntfs_dot_generic`: NTFS synonyms of `.git`
//!   (`.git. . .`, `git~1`, `.git::$INDEX_ALLOCATION`) and of `.gitmodules` (`gitmod~1`,
//!   `gi7eba~9`);
//! - utf8.c `is_hfs_dotgit` / `next_hfs_char`: HFS+ ignores some code points (`.g\u{200c}it` is
//!   `.git` there), and folds ASCII case.
//!
//! Git applies the NTFS and HFS+ rules only where `core.protectNTFS` / `core.protectHFS` are
//! on, fsck always: here always, as fsck does, since an archive is extracted on systems the
//! bridge does not know.
//!
//! Beyond git, a name with a backslash is refused: git refuses it on Windows
//! (`verify_path` under `protectNTFS`), and extractors that take `\` for a separator (Info-ZIP
//! for archives made on FAT or NTFS, Windows' own tools, Python's `zipfile` on Windows) would
//! turn `a\..\x` into a path that leaves the folder. So is a name with a control character
//! (below U+0020, or U+007F): Info-ZIP `unzip` drops them, so that `buildspec.yml\u{7}`
//! lands on `buildspec.yml`, over the injected file (seen by the differential extraction
//! test, `tests/e2e/hostile_trees/`). So is a name that starts with a drive letter
//! (`c:x`; git's `has_dos_drive_prefix`, which git for Windows refuses): `bsdtar` strips it
//! from a path, so that `c:buildspec.yml` lands on `buildspec.yml` (seen by the same test);
//! refused at any depth, as git for Windows refuses `:` in any name. So is a name that ends in
//! `;` and digits (`buildspec.yml;1`, `.git;`): Info-ZIP `unzip` on Unix takes that for a VMS
//! version and strips it unless given `-V` (unix/unix.c `mapname`: the last `;` of the last
//! component, followed by nothing but digits), so that `buildspec.yml;1` lands on the injected
//! `buildspec.yml` and `.git;` becomes `.git`; refused at any depth, so that no other
//! extractor's reading of a folder name matters. A name longer than 255 bytes (Linux's
//! `NAME_MAX`) is refused too: no Linux file system can create it, and an extractor that
//! shortens it decides what it becomes. (The rest of `mapname`'s rewrites are refused above:
//! a leading `/`, empty, `.` and `..` components, control characters; a whole path too long
//! to unpack is refused by `crate::archive::check_path_length`, since `unzip` truncates
//! one and still writes the file.) And a name must be UTF-8, which zip names are.
//!
//! Every check looks at one name (one path component) as bytes: a path is never checked as
//! a joined string, where `a/.git` and `a/.git/b` would need a second parser to agree with
//! the first.

use std::fmt;

/// Why a name cannot be archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// fsck `emptyName`.
    Empty,
    /// fsck `hasDot`.
    Dot,
    /// fsck `hasDotdot`.
    DotDot,
    /// fsck `fullPathname`: one name holding a path.
    Slash,
    /// Cannot be in a git tree (the name's terminator), nor in a file name.
    Nul,
    /// A `\`, a separator for some extractors.
    Backslash,
    /// A control character (below U+0020, or U+007F), which extractors drop.
    Control,
    /// A drive letter (`c:...`), which extractors strip.
    DriveLetter,
    /// Ends in `;` and digits, a VMS version Info-ZIP `unzip` strips.
    VersionSuffix,
    /// Longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// Zip names are UTF-8.
    NotUtf8,
    /// fsck `hasDotgit`, `verify_path`: `.git` or one of its HFS+ / NTFS synonyms.
    DotGit,
    /// fsck `gitmodulesSymlink`: a `.gitmodules` (or a synonym) that is a link.
    GitmodulesLink,
    /// `verify_path`: a link below a folder named `.gitmodules` (or a synonym).
    LinkBelowGitmodules,
    /// fsck `gitmodulesBlob`: a `.gitmodules` (or a synonym) that is a folder or a submodule.
    GitmodulesNotAFile,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Empty => "the name is empty (git fsck: emptyName)",
            Refusal::Dot => "the name is `.` (git fsck: hasDot)",
            Refusal::DotDot => "the name is `..`, which leaves its folder (git fsck: hasDotdot)",
            Refusal::Slash => "one name holds a `/`, a path that can lead anywhere (git fsck: fullPathname)",
            Refusal::Nul => "the name holds a NUL byte",
            Refusal::Backslash => "the name holds a `\\`, which some extractors take for a folder separator",
            Refusal::DriveLetter => {
                "the name starts with a drive letter, which extractors strip (bsdtar would write \"c:buildspec.yml\" over \"buildspec.yml\")"
            }
            Refusal::Control => {
                "the name holds a control character, which extractors drop (Info-ZIP unzip would write \"buildspec.yml\\u{7}\" over \"buildspec.yml\")"
            }
            Refusal::VersionSuffix => {
                "the name ends in `;` and digits, a VMS version suffix that Info-ZIP unzip strips (it would write \"buildspec.yml;1\" over \"buildspec.yml\", and \".git;\" as \".git\")"
            }
            Refusal::TooLong => "the name is longer than 255 bytes, Linux's NAME_MAX: no Linux file system can create it",
            Refusal::NotUtf8 => "the name is not UTF-8 (zip names must be)",
            Refusal::DotGit => {
                "the name is `.git` or a look-alike that a file system may read as `.git` (git fsck: hasDotgit)"
            }
            Refusal::GitmodulesLink => {
                "`.gitmodules` (or a look-alike) is a symbolic link (git fsck: gitmodulesSymlink)"
            }
            Refusal::GitmodulesNotAFile => {
                "`.gitmodules` (or a look-alike) is a folder or a submodule, not a file (git fsck: gitmodulesBlob)"
            }
            Refusal::LinkBelowGitmodules => {
                "a symbolic link below a folder named `.gitmodules` (or a look-alike), which git's verify_path refuses"
            }
        })
    }
}

/// Longest name (one path component): Linux's `NAME_MAX`.
pub const MAX_NAME_BYTES: usize = 255;

/// Whether `name` ends in `;` and zero or more ASCII digits: what Info-ZIP `unzip` strips as
/// a VMS version (unix/unix.c `mapname`, unless `-V`).
pub fn has_version_suffix(name: &[u8]) -> bool {
    let digits = name.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    name.len() > digits && name[name.len() - digits - 1] == b';'
}

/// Checks one tree entry's name, as fsck and `verify_path` do; `is_link` for an entry of mode
/// 120000. The first refusal found is returned.
pub fn check_name(name: &[u8], is_link: bool) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err(Refusal::Empty);
    }
    if name.contains(&0) {
        return Err(Refusal::Nul);
    }
    if name.contains(&b'/') {
        return Err(Refusal::Slash);
    }
    if name == b"." {
        return Err(Refusal::Dot);
    }
    if name == b".." {
        return Err(Refusal::DotDot);
    }
    if is_hfs_dotgit(name) || is_ntfs_dotgit(name) {
        return Err(Refusal::DotGit);
    }
    if is_link && (is_hfs_dotgitmodules(name) || is_ntfs_dotgitmodules(name)) {
        return Err(Refusal::GitmodulesLink);
    }
    // fsck: what follows each backslash is checked again, NTFS taking `\` for a separator.
    for (index, _) in name.iter().enumerate().filter(|(_, b)| **b == b'\\') {
        let rest = &name[index + 1..];
        if is_ntfs_dotgit(rest) {
            return Err(Refusal::DotGit);
        }
        if is_link && is_ntfs_dotgitmodules(rest) {
            return Err(Refusal::GitmodulesLink);
        }
    }
    if name.contains(&b'\\') {
        return Err(Refusal::Backslash);
    }
    if name.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Err(Refusal::Control);
    }
    if name.len() >= 2 && name[0].is_ascii_alphabetic() && name[1] == b':' {
        return Err(Refusal::DriveLetter);
    }
    if has_version_suffix(name) {
        return Err(Refusal::VersionSuffix);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Refusal::TooLong);
    }
    if std::str::from_utf8(name).is_err() {
        return Err(Refusal::NotUtf8);
    }
    Ok(())
}

/// Whether `name` is `.gitmodules` or an HFS+ / NTFS synonym, which fsck wants a blob
/// (`gitmodulesBlob`): a folder or a submodule of that name is refused by the walkers. Every
/// folder name for which [`refuses_links_below`] is one of these, so no link below one is
/// ever reached.
pub fn is_gitmodules(name: &[u8]) -> bool {
    is_hfs_dotgitmodules(name) || is_ntfs_dotgitmodules(name)
}

/// Whether a link below a folder of this name is refused. `verify_path` checks a link's
/// whole path with the link's mode, each component followed by the rest of the path: a
/// `.gitmodules` component (verify_dotfile, any case), an HFS+ synonym, or an NTFS one that
/// reaches a `:` before the `/`, also after a `\`.
pub fn refuses_links_below(folder: &[u8]) -> bool {
    let followed = [folder, b"/"].concat();
    folder.eq_ignore_ascii_case(b".gitmodules")
        || is_hfs_dotgitmodules(&followed)
        || is_ntfs_dotgitmodules(&followed)
        || followed.iter().enumerate().any(|(i, b)| *b == b'\\' && is_ntfs_dotgitmodules(&followed[i + 1..]))
}

/// A refused component of a path: which one (0-based) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRefusal {
    pub component: usize,
    pub why: Refusal,
}

/// Checks a `/`-separated relative path as `verify_path` does, each component by
/// [`check_name`] (`is_link` for the last), and for a link no folder on the way for which
/// [`refuses_links_below`]. A leading `/` or a doubled or trailing `/` is an empty
/// component, refused.
pub fn check_path(path: &str, is_link: bool) -> Result<(), PathRefusal> {
    let count = path.split('/').count();
    for (component, name) in path.split('/').enumerate() {
        let last = component + 1 == count;
        check_name(name.as_bytes(), is_link && last).map_err(|why| PathRefusal { component, why })?;
        if is_link && !last && refuses_links_below(name.as_bytes()) {
            return Err(PathRefusal { component, why: Refusal::LinkBelowGitmodules });
        }
    }
    Ok(())
}

/// The byte at `i`, or 0 past the end: git's code reads NUL-terminated strings.
fn at(name: &[u8], i: usize) -> u8 {
    name.get(i).copied().unwrap_or(0)
}

/// path.c `is_ntfs_dotgit`: `.git` or `git~1` (any case), then only spaces and periods up to
/// the end, a separator (`/` or `\`) or a `:` (an alternate data stream).
pub fn is_ntfs_dotgit(name: &[u8]) -> bool {
    let mut i = match at(name, 0) {
        b'.' if at(name, 1).eq_ignore_ascii_case(&b'g')
            && at(name, 2).eq_ignore_ascii_case(&b'i')
            && at(name, 3).eq_ignore_ascii_case(&b't') =>
        {
            4
        }
        b'g' | b'G'
            if at(name, 1).eq_ignore_ascii_case(&b'i')
                && at(name, 2).eq_ignore_ascii_case(&b't')
                && at(name, 3) == b'~'
                && at(name, 4) == b'1' =>
        {
            5
        }
        _ => return false,
    };
    loop {
        let c = at(name, i);
        i += 1;
        if c == 0 || c == b'/' || c == b'\\' || c == b':' {
            return true;
        }
        if c != b'.' && c != b' ' {
            return false;
        }
    }
}

/// path.c `is_ntfs_dot_generic`: `.<dotgit_name>`, its short name (`<first 6>~1`..`~4`), or
/// the fall-back short name (`<prefix>~<digits>`), then only spaces and periods up to the end
/// or a `:`.
fn is_ntfs_dot_generic(name: &[u8], dotgit_name: &[u8], shortname_prefix: &[u8; 6]) -> bool {
    let only_spaces_and_periods = |mut i: usize| loop {
        let c = at(name, i);
        i += 1;
        if c == 0 || c == b':' {
            return true;
        }
        if c != b' ' && c != b'.' {
            return false;
        }
    };
    let len = dotgit_name.len();
    // strncasecmp(name + 1, dotgit_name, len): the name's bytes, never 0 where they match.
    if at(name, 0) == b'.' && (0..len).all(|k| at(name, 1 + k).to_ascii_lowercase() == dotgit_name[k]) {
        return only_spaces_and_periods(len + 1);
    }
    // A regular NTFS short name: the first 6 characters, then ~1 to ~4.
    if (0..6).all(|k| at(name, k).to_ascii_lowercase() == dotgit_name[k])
        && at(name, 6) == b'~'
        && (b'1'..=b'4').contains(&at(name, 7))
    {
        return only_spaces_and_periods(8);
    }
    // The fall-back short name: up to 6 characters of the prefix, `~`, a non-zero digit,
    // digits, 8 characters in all.
    let mut i = 0;
    let mut saw_tilde = false;
    while i < 8 {
        let c = at(name, i);
        if c == 0 {
            return false;
        } else if saw_tilde {
            if !c.is_ascii_digit() {
                return false;
            }
        } else if c == b'~' {
            i += 1;
            if !(b'1'..=b'9').contains(&at(name, i)) {
                return false;
            }
            saw_tilde = true;
        } else if i >= 6 || c & 0x80 != 0 || c.to_ascii_lowercase() != shortname_prefix[i] {
            return false;
        }
        i += 1;
    }
    only_spaces_and_periods(8)
}

/// path.c `is_ntfs_dotgitmodules`.
pub fn is_ntfs_dotgitmodules(name: &[u8]) -> bool {
    is_ntfs_dot_generic(name, b"gitmodules", b"gi7eba")
}

/// utf8.c `pick_one_utf8_char`: the code point at the start of `s` and its length, or `None`
/// for malformed UTF-8 (overlong forms, surrogates, U+FFFE, U+FFFF, past U+10FFFF). An empty
/// `s` reads as NUL, the end of a C string.
fn pick_one_utf8_char(s: &[u8]) -> Option<(u32, usize)> {
    let b = |i: usize| u32::from(at(s, i));
    let s0 = at(s, 0);
    let continuation = |i: usize| at(s, i) & 0xc0 == 0x80;
    if s0 < 0x80 {
        Some((u32::from(s0), 1))
    } else if s0 & 0xe0 == 0xc0 {
        if !continuation(1) || s0 & 0xfe == 0xc0 {
            return None;
        }
        Some((((b(0) & 0x1f) << 6) | (b(1) & 0x3f), 2))
    } else if s0 & 0xf0 == 0xe0 {
        let s1 = at(s, 1);
        if !continuation(1)
            || !continuation(2)
            || (s0 == 0xe0 && s1 & 0xe0 == 0x80)
            || (s0 == 0xed && s1 & 0xe0 == 0xa0)
            || (s0 == 0xef && s1 == 0xbf && at(s, 2) & 0xfe == 0xbe)
        {
            return None;
        }
        Some((((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f), 3))
    } else if s0 & 0xf8 == 0xf0 {
        let s1 = at(s, 1);
        if !continuation(1)
            || !continuation(2)
            || !continuation(3)
            || (s0 == 0xf0 && s1 & 0xf0 == 0x80)
            || (s0 == 0xf4 && s1 > 0x8f)
            || s0 > 0xf4
        {
            return None;
        }
        Some((((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f), 4))
    } else {
        None
    }
}

/// The code points HFS+ ignores in names (utf8.c `next_hfs_char`).
const HFS_IGNORED: [u32; 16] = [
    0x200c, 0x200d, 0x200e, 0x200f, // zero-width (non-)joiner, left-to-right and right-to-left marks
    0x202a, 0x202b, 0x202c, 0x202d, 0x202e, // directional embeddings and overrides
    0x206a, 0x206b, 0x206c, 0x206d, 0x206e, 0x206f, // deprecated format characters
    0xfeff, // zero width no-break space
];

/// utf8.c `next_hfs_char`: the next code point that HFS+ does not ignore; 0 at the end and
/// for malformed UTF-8 (after which nothing more is read).
fn next_hfs_char(rest: &mut &[u8]) -> u32 {
    loop {
        let Some((c, len)) = pick_one_utf8_char(rest) else {
            *rest = &[];
            return 0;
        };
        *rest = rest.get(len..).unwrap_or(&[]);
        if !HFS_IGNORED.contains(&c) {
            return c;
        }
    }
}

/// utf8.c `is_hfs_dot_generic`: `.` then `needle` (ASCII, lower case) in any case, ignored
/// code points anywhere, then the end or a `/`.
fn is_hfs_dot_generic(name: &[u8], needle: &[u8]) -> bool {
    let mut rest = name;
    if next_hfs_char(&mut rest) != u32::from(b'.') {
        return false;
    }
    for wanted in needle {
        let c = next_hfs_char(&mut rest);
        // The needles are ASCII: anything past it cannot fold to them here.
        if c > 127 || (c as u8).to_ascii_lowercase() != *wanted {
            return false;
        }
    }
    let c = next_hfs_char(&mut rest);
    c == 0 || c == u32::from(b'/')
}

/// utf8.c `is_hfs_dotgit`.
pub fn is_hfs_dotgit(name: &[u8]) -> bool {
    is_hfs_dot_generic(name, b"git")
}

/// utf8.c `is_hfs_dotgitmodules`.
pub fn is_hfs_dotgitmodules(name: &[u8]) -> bool {
    is_hfs_dot_generic(name, b"gitmodules")
}

/// Whether `name` is a `.git` look-alike (HFS+ or NTFS), the test the walkers use for the
/// checkout's own repository folder.
pub fn is_dotgit(name: &[u8]) -> bool {
    is_hfs_dotgit(name) || is_ntfs_dotgit(name)
}

#[cfg(test)]
mod tests;
