#![no_main]
//! Branch names and causes. The branch rule is checked against git's own rule, transcribed
//! byte for byte below from git's `refs.c` (`check_refname_component`,
//! `check_or_sanitize_refname`, `check_branch_ref`): what `git check-ref-format --branch`
//! says outside a repository.
use libfuzzer_sys::fuzz_target;

/// git's disposition of a byte in a ref name component: 0 fine, 1 ends the component, 2 a
/// dot (`..` refused), 3 `{` (`@{` refused), 4 always refused, 5 `*` (refused outside
/// refspec patterns).
fn disposition(byte: u8) -> u8 {
    match byte {
        0 | b'/' => 1,
        b'.' => 2,
        b'{' => 3,
        1..=0x1f | 0x7f | b' ' | b':' | b'?' | b'[' | b'\\' | b'^' | b'~' => 4,
        b'*' => 5,
        _ => 0,
    }
}

fn git_accepts_branch(name: &[u8]) -> bool {
    if name.first() == Some(&b'-') || name == b"HEAD" {
        return false;
    }
    let refname = [b"refs/heads/".as_slice(), name].concat();
    for component in refname.split(|&b| b == b'/') {
        if component.is_empty() || component[0] == b'.' || component.ends_with(b".lock") {
            return false;
        }
        let mut last = 0u8;
        for &byte in component {
            match disposition(byte) {
                2 if last == b'.' => return false,
                3 if last == b'@' => return false,
                4 | 5 => return false,
                _ => {}
            }
            last = byte;
        }
    }
    refname.last() != Some(&b'.')
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ours = bridge_core::validate::check_branch(&text).is_ok();
    if text.contains('\0') {
        // git never sees past a NUL (a C string); the bridge refuses it as a control character.
        assert!(!ours, "a branch with NUL was accepted");
    } else {
        // Stricter than git in two documented ways: `@` alone, and over 255 bytes.
        let git = git_accepts_branch(text.as_bytes()) && text != "@" && text.len() <= 255;
        assert_eq!(ours, git, "branch {text:?}: bridge {ours}, git {git}");
    }
    if let Ok(cause) = bridge_core::validate::parse_cause(&text) {
        assert_eq!(bridge_core::validate::parse_cause(&cause.as_trigger_value()), Ok(cause));
    }
});
