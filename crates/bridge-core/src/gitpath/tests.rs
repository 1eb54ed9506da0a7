use super::*;

/// Cases from git's own test suite (t/t0060-path-utils.sh `is_dotgit` / `is_ntfs_dotgit`,
/// t1450-fsck.sh, t7415-submodule-names.sh) and the issue.
#[test]
fn git_look_alikes_are_refused() {
    for name in [
        ".git",
        ".GIT",
        ".Git",
        ".git.",
        ".git. . .",
        ".git ",
        ".git::$INDEX_ALLOCATION",
        ".git:",
        ".git:foo",
        "git~1",
        "GIT~1",
        "git~1. ",
        "git~1:stream",
        ".g\u{200c}it",
        "\u{200c}.git",
        ".git\u{200d}",
        ".gi\u{feff}t",
        ".\u{202e}GIT",
        ".g\u{206a}i\u{206f}t",
        "foo\\.git",
        "foo\\git~1",
        "a\\.GIT\\b",
    ] {
        assert_eq!(check_name(name.as_bytes(), false), Err(Refusal::DotGit), "{name:?}");
    }
    // Invalid UTF-8 right after `.git` ends HFS+ decoding: git counts it as `.git`.
    assert!(is_hfs_dotgit(b".git\xff"));
    assert_eq!(check_name(b".git\xff", false), Err(Refusal::DotGit));
}

#[test]
fn names_git_keeps_are_kept() {
    for name in [
        ".gitignore",
        ".github",
        ".gitmodules",
        ".gitattributes",
        ".git-blame-ignore-revs",
        ".gitx",
        "git",
        "git~2",
        "git~10",
        ".git~1",
        "..git",
        ".g\u{200b}it", // U+200B is not one of the code points HFS+ ignores
        "...",
        ".. ",
        "git~1x",
        "buildspec.yml",
        "café",
        "x\u{85}c1", // C1 controls, UTF-8 encoded: kept by every extractor tried
        ":",
        " ",
        "1:x",
        "ab:c",
        "xy:",
        "é:x",
    ] {
        assert_eq!(check_name(name.as_bytes(), false), Ok(()), "{name:?}");
    }
}

#[test]
fn paths_inside_one_name_and_dots_are_refused() {
    let cases: [(&[u8], Refusal); 16] = [
        (b"", Refusal::Empty),
        (b".", Refusal::Dot),
        (b"..", Refusal::DotDot),
        (b"zz/../buildspec.yml", Refusal::Slash),
        (b"/abs-path.txt", Refusal::Slash),
        (b"a/", Refusal::Slash),
        (b"a\0b", Refusal::Nul),
        (b"a\\b", Refusal::Backslash),
        (b"..\\buildspec.yml", Refusal::Backslash),
        (b"caf\xe9", Refusal::NotUtf8),
        (b"new\nline", Refusal::Control),
        (b"tab\there", Refusal::Control),
        (b"buildspec.yml\x07", Refusal::Control),
        (b"del\x7f", Refusal::Control),
        (b"c:buildspec.yml", Refusal::DriveLetter),
        (b"Z:", Refusal::DriveLetter),
    ];
    for (name, why) in cases {
        assert_eq!(check_name(name, false), Err(why), "{:?}", String::from_utf8_lossy(name));
    }
}

/// Info-ZIP `unzip` strips `;` and the digits after it from the end of the last
/// component (unix/unix.c `mapname`): `unzip -o` of a zip holding `buildspec.yml` and then
/// `buildspec.yml;1` writes the second over the first.
#[test]
fn names_unzip_takes_for_vms_versions_are_refused() {
    for name in [";", ";1", ";01", "buildspec.yml;1", "buildspec.yml;", ".git;", ".GIT;1", "a;1;2", "x;;", "é;9"] {
        assert_eq!(check_name(name.as_bytes(), false), Err(Refusal::VersionSuffix), "{name:?}");
        assert_eq!(check_name(name.as_bytes(), true), Err(Refusal::VersionSuffix), "{name:?} as a link");
    }
    // Anything but digits after the last `;` is kept by unzip, and here.
    for name in ["a;b", ";x", "a;1b", "a;1 ", "a;\u{661}", "semi;colon.txt", "1", "a1"] {
        assert_eq!(check_name(name.as_bytes(), false), Ok(()), "{name:?}");
    }
    assert_eq!(check_path("ci/buildspec.yml;7", false), Err(PathRefusal { component: 1, why: Refusal::VersionSuffix }));
    // At any depth: a folder's name is refused too.
    assert_eq!(check_path("d;1/x", false), Err(PathRefusal { component: 0, why: Refusal::VersionSuffix }));
    assert!(Refusal::VersionSuffix.to_string().contains("Info-ZIP unzip strips"));
}

#[test]
fn names_longer_than_name_max_are_refused() {
    let longest = "n".repeat(MAX_NAME_BYTES);
    assert_eq!(check_name(longest.as_bytes(), false), Ok(()));
    let over = "n".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(check_name(over.as_bytes(), false), Err(Refusal::TooLong));
    // Counted in bytes: 128 two-byte characters are 256 bytes.
    assert_eq!(check_name("é".repeat(128).as_bytes(), false), Err(Refusal::TooLong));
    assert_eq!(check_name("é".repeat(127).as_bytes(), false), Ok(()));
    assert_eq!(check_path(&format!("a/{over}/b"), false), Err(PathRefusal { component: 1, why: Refusal::TooLong }));
    // A `.git` look-alike, however long, is refused as one.
    let dotgit = format!(".git{}", " ".repeat(300));
    assert_eq!(check_name(dotgit.as_bytes(), false), Err(Refusal::DotGit));
}

#[test]
fn gitmodules_look_alikes_may_not_be_links() {
    for name in [
        ".gitmodules",
        ".GITMODULES",
        ".gitmodules.",
        ".gitmodules ::$DATA",
        "gitmod~1",
        "GITMOD~4",
        "gi7eba~1",
        "gi7eba~9",
        "gi7eb~12",
        ".gitmodules\u{200c}",
        "x\\.gitmodules",
    ] {
        assert_eq!(check_name(name.as_bytes(), true), Err(Refusal::GitmodulesLink), "{name:?}");
        if !name.contains('\\') {
            assert_eq!(check_name(name.as_bytes(), false), Ok(()), "{name:?} as a file");
        }
    }
    for name in ["gitmod~5", "gi7eba~0", ".gitmodulesx", "gi7ebax1", "gi7eb~1a"] {
        assert_eq!(check_name(name.as_bytes(), true), Ok(()), "{name:?}");
    }
}

#[test]
fn paths_are_checked_component_by_component() {
    assert_eq!(check_path("ci/buildspec.yml", false), Ok(()));
    assert_eq!(check_path("buildspec.yml", false), Ok(()));
    assert_eq!(check_path("a/.git/b", false), Err(PathRefusal { component: 1, why: Refusal::DotGit }));
    assert_eq!(check_path("/etc/x", false), Err(PathRefusal { component: 0, why: Refusal::Empty }));
    assert_eq!(check_path("a//b", false), Err(PathRefusal { component: 1, why: Refusal::Empty }));
    assert_eq!(check_path("a/", false), Err(PathRefusal { component: 1, why: Refusal::Empty }));
    assert_eq!(check_path("../b", false), Err(PathRefusal { component: 0, why: Refusal::DotDot }));
    assert_eq!(check_path(".gitmodules/x", false), Ok(()));
    for folder in [".gitmodules", ".GitModules", ".gitmodules\u{200c}", "gitmod~1:x"] {
        assert_eq!(
            check_path(&format!("{folder}/x"), true),
            Err(PathRefusal { component: 0, why: Refusal::LinkBelowGitmodules }),
            "{folder:?}"
        );
        assert!(is_gitmodules(folder.as_bytes()), "the walkers refuse {folder:?} as a folder already");
    }
    assert!(refuses_links_below(br"a\gitmod~1:"), "after a backslash");
    // NTFS synonyms end a name only at its end or a `:`; followed by `/` they do not.
    assert_eq!(check_path("gitmod~1/x", true), Ok(()));
    assert_eq!(check_path(".gitmodules. /x", true), Ok(()));
    assert_eq!(check_path("x/.gitmodules", true), Err(PathRefusal { component: 1, why: Refusal::GitmodulesLink }));
}

#[test]
fn the_utf8_reader_refuses_what_git_refuses() {
    assert_eq!(pick_one_utf8_char("é".as_bytes()), Some((0xe9, 2)));
    assert_eq!(pick_one_utf8_char("\u{200c}".as_bytes()), Some((0x200c, 3)));
    assert_eq!(pick_one_utf8_char("\u{1f600}".as_bytes()), Some((0x1f600, 4)));
    for bad in [&b"\xc0\xae"[..], b"\xe0\x80\xae", b"\xed\xa0\x80", b"\xef\xbf\xbe", b"\xf4\x90\x80\x80", b"\x80"] {
        assert_eq!(pick_one_utf8_char(bad), None, "{bad:?}");
    }
    assert_eq!(pick_one_utf8_char(b""), Some((0, 1)));
}
