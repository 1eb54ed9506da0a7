use std::borrow::Cow;

use proptest::prelude::*;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use yaml_serde::Value;

use super::digest::digest_of;
use super::document::is_null;
use super::entries::plain_name;
use super::*;

include!("../../../../tests/fixtures/buildspecs/generate.rs");

fn vars() -> Vec<(&'static str, String)> {
    vec![("PAGURE_CAUSE", "7".into()), ("PAGURE_COMMIT", "05bab967134e26fd2a307065b49ce0bc2a2063ed".into())]
}

/// A document as the editor's own parser reads it: scalars with style and tag, anchors as
/// ids, aliases as the id they refer to (never expanded); maps as key, value, key, ….
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    Scalar { value: String, style: ScalarStyle, tag: Option<String>, anchor: usize },
    Alias(usize),
    Seq { items: Vec<Tree>, tag: Option<String>, anchor: usize },
    Map { items: Vec<Tree>, tag: Option<String>, anchor: usize },
}

fn tree(text: &str) -> Tree {
    let tag = |t: Option<Cow<'_, Tag>>| t.map(|t| format!("{}{}", t.handle, t.suffix));
    let mut stack: Vec<Tree> = Vec::new();
    let mut done = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, _) = item.unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let node = match event {
            Event::Scalar(value, style, anchor, t) => {
                Tree::Scalar { value: value.into_owned(), style, tag: tag(t), anchor }
            }
            Event::Alias(id) => Tree::Alias(id),
            Event::SequenceStart(anchor, t) => {
                stack.push(Tree::Seq { items: Vec::new(), tag: tag(t), anchor });
                continue;
            }
            Event::MappingStart(anchor, t) => {
                stack.push(Tree::Map { items: Vec::new(), tag: tag(t), anchor });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => stack.pop().expect("balanced"),
            _ => continue,
        };
        match stack.last_mut() {
            Some(Tree::Seq { items, .. } | Tree::Map { items, .. }) => items.push(node),
            _ => done.push(node),
        }
    }
    assert_eq!(done.len(), 1, "one document");
    renumber(done.pop().expect("root"))
}

/// Anchors numbered in the order of their definitions, aliases following them: two trees
/// compare equal when they have the same nodes and the same references.
fn renumber(mut tree: Tree) -> Tree {
    fn walk(tree: &mut Tree, map: &mut std::collections::HashMap<usize, usize>) {
        let anchor = match tree {
            Tree::Alias(id) => {
                *id = map.get(id).copied().unwrap_or(usize::MAX);
                return;
            }
            Tree::Scalar { anchor, .. } | Tree::Seq { anchor, .. } | Tree::Map { anchor, .. } => anchor,
        };
        if *anchor != 0 {
            let next = map.len() + 1;
            map.insert(*anchor, next);
            *anchor = next;
        }
        if let Tree::Seq { items, .. } | Tree::Map { items, .. } = tree {
            items.iter_mut().for_each(|item| walk(item, map));
        }
    }
    walk(&mut tree, &mut std::collections::HashMap::new());
    tree
}

fn scalar(value: &str, style: ScalarStyle) -> Tree {
    Tree::Scalar { value: value.to_owned(), style, tag: None, anchor: 0 }
}

/// The value under `key` in a map's items, created (empty mapping) when absent or null,
/// as the last entry or as the first one.
fn slot<'t>(items: &'t mut Vec<Tree>, key: &str, first: bool) -> &'t mut Tree {
    let at = items.chunks(2).position(|pair| matches!(&pair[0], Tree::Scalar { value, .. } if value == key));
    let empty = Tree::Map { items: Vec::new(), tag: None, anchor: 0 };
    let at = match at {
        Some(i) => 2 * i + 1,
        None if first => {
            items.splice(0..0, [scalar(key, ScalarStyle::Plain), empty.clone()]);
            1
        }
        None => {
            items.push(scalar(key, ScalarStyle::Plain));
            items.push(empty.clone());
            items.len() - 1
        }
    };
    let value = &mut items[at];
    if matches!(value, Tree::Scalar { value, style: ScalarStyle::Plain, tag: None, .. } if is_null(value)) {
        *value = empty;
    }
    value
}

/// What the edited document must read as: the original with each variable set, new
/// entries last in their mapping, or first (`first`: after a block scalar at the end of
/// a file without a final line break nothing can be appended).
fn with_variables(mut doc: Tree, variables: &[(&str, String)], first: bool) -> Tree {
    let Tree::Map { items, .. } = &mut doc else { panic!("root") };
    let Tree::Map { items, .. } = slot(items, "env", first) else { panic!("env") };
    let Tree::Map { items, .. } = slot(items, "variables", first) else { panic!("variables") };
    let mut added = 0;
    for (name, value) in variables {
        let quoted = scalar(value, ScalarStyle::DoubleQuoted);
        match items.chunks(2).position(|pair| matches!(&pair[0], Tree::Scalar { value, .. } if value == name)) {
            Some(i) => items[2 * i + 1] = quoted,
            None => {
                let style = if plain_name(name) { ScalarStyle::Plain } else { ScalarStyle::DoubleQuoted };
                let at = if first { 2 * added } else { items.len() };
                items.splice(at..at, [scalar(name, style), quoted]);
                added += 1;
            }
        }
    }
    renumber(doc)
}

/// Injects and checks, with the editor's parser, that the result reads as the original
/// plus the variables; returns the edited text.
fn edited(text: &str, variables: &[(&str, String)]) -> String {
    let out = inject(text, variables).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let found = tree(&out.text);
    if found != with_variables(tree(text), variables, true) {
        assert_eq!(found, with_variables(tree(text), variables, false), "{text}\n=>\n{}", out.text);
    }
    out.text
}

fn is_subsequence(short: &str, long: &str) -> bool {
    let mut long = long.chars();
    short.chars().all(|c| long.any(|d| d == c))
}

#[test]
fn creates_env_at_the_end_of_the_top_level() {
    let text = "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n";
    assert_eq!(
        edited(text, &vars()),
        format!(
            "{text}env:\n  variables:\n    PAGURE_CAUSE: \"7\"\n    PAGURE_COMMIT: \"05bab967134e26fd2a307065b49ce0bc2a2063ed\"\n"
        )
    );
    // No final line break; comments and an end marker after the last key; a start marker.
    for text in [
        "version: 0.2\nphases: {}",
        "version: 0.2\nphases: {} # last\n# trailing comment\n\n",
        "---\nversion: 0.2\nphases:\n  build: {}\n...\n",
        "%YAML 1.1\n--- # doc\nversion: 0.2\n...\n# after the end\n",
        "  version: 0.2\n  phases: {}\n",
    ] {
        let out = edited(text, &vars());
        assert!(is_subsequence(text, &out), "{out}");
    }
    let out = edited("version: 0.2\nphases: {} # last\n# trailing comment\n", &vars());
    assert!(out.starts_with("version: 0.2\nphases: {} # last\nenv:\n"), "{out}");
    let out = edited("version: 0.2\nx: 1\n...\n", &vars());
    assert!(out.ends_with("\"\n...\n"), "{out}");
}

#[test]
fn adds_variables_to_an_env_without() {
    let text = "version: 0.2\nenv:\n    shell: bash # the shell\n    # secrets below\n    secrets-manager:\n        TOKEN: a:b\nphases: {}\n";
    let out = edited(text, &vars());
    assert!(out.contains("        TOKEN: a:b\n    variables:\n      PAGURE_CAUSE: \"7\"\n"), "{out}");
    assert!(is_subsequence(text, &out));
    edited("version: 0.2\nenv: {shell: bash}\n", &vars());
    edited("version: 0.2\nenv: {}\n", &vars());
    edited("{version: 0.2, env: {shell: bash, }}", &vars());
}

#[test]
fn fills_a_null_env_or_variables() {
    for text in [
        "version: 0.2\nenv:\nphases: {}\n",
        "version: 0.2\nenv: # nothing yet\nphases: {}\n",
        "version: 0.2\nenv: ~\n",
        "version: 0.2\nenv: null # none",
        "version: 0.2\nenv:\n  variables:\n  shell: bash\n",
        "version: 0.2\nenv:\n  variables: ~ # later\n",
        "version: 0.2\nenv:\n  variables: {}\n",
        "version: 0.2\nenv: {variables: }\n",
        "version: 0.2\nenv: {variables: ~}\n",
        "version: 0.2\nenv: {variables}\n",
        "{version: 0.2, env: }\n",
        "{version: 0.2, env: null}\n",
    ] {
        edited(text, &vars());
    }
    assert_eq!(
        edited("version: 0.2\nenv: # nothing yet\nphases: {}\n", &vars()[..1]),
        "version: 0.2\nenv: # nothing yet\n  variables:\n    PAGURE_CAUSE: \"7\"\nphases: {}\n"
    );
}

#[test]
fn appends_with_the_indentation_of_the_existing_keys() {
    let text =
        "version: 0.2\nenv:\n  variables:\n      A: one   # first\n\n      # between\n      Z: last\n  shell: bash\n";
    assert_eq!(
        edited(text, &vars()[..1]),
        "version: 0.2\nenv:\n  variables:\n      A: one   # first\n\n      # between\n      Z: last\n      PAGURE_CAUSE: \"7\"\n  shell: bash\n"
    );
    // After a block scalar, whatever its chomping: its lines stay its own.
    for header in ["|", "|-", "|+", ">", ">+"] {
        edited(&format!("version: 0.2\nenv:\n  variables:\n    A: {header}\n      text\n\n  shell: bash\n"), &vars());
        edited(&format!("version: 0.2\nenv:\n  variables:\n    A: {header}\n      text\n\n"), &vars());
        // At the end of the file with no line break, nothing can follow the scalar.
        let out = edited(&format!("version: 0.2\nenv:\n  variables:\n    A: {header}\n      text"), &vars());
        assert!(out.contains("  variables:\n    PAGURE_CAUSE: \"7\""), "{out}");
        edited(&format!("version: 0.2\nphases:\n  build:\n    commands:\n      - {header}\n        make"), &vars());
    }
}

#[test]
fn replaces_existing_values_in_place() {
    let text = "version: 0.2\nenv:\n  variables:\n    A: one\n    PAGURE_CAUSE: mine # why\n    Z: last\n";
    let out = inject(text, &vars()).expect("inject");
    assert_eq!(
        out.text,
        "version: 0.2\nenv:\n  variables:\n    A: one\n    PAGURE_CAUSE: \"7\" # why\n    Z: last\n    PAGURE_COMMIT: \"05bab967134e26fd2a307065b49ce0bc2a2063ed\"\n"
    );
    assert_eq!(out.overridden, ["PAGURE_CAUSE"]);
    for old in [
        "\"PAGURE_CAUSE\": x",
        "'PAGURE_CAUSE': x",
        "\"PAGURE\\x5fCAUSE\": x",
        "PAGURE_CAUSE:",
        "PAGURE_CAUSE: # empty",
        "PAGURE_CAUSE: |\n      block\n      text\n",
        "PAGURE_CAUSE: >-\n      folded\n\n",
        "PAGURE_CAUSE: *x",
        "PAGURE_CAUSE: &unused anchored",
        "PAGURE_CAUSE: !!str 12",
        "PAGURE_CAUSE: [a,\n      b, {c: d}]",
        "PAGURE_CAUSE: {a: [1,\n        2]}",
        "PAGURE_CAUSE:\n      nested: map\n      more: [x]",
        "PAGURE_CAUSE:\n    - a\n    - b",
        "PAGURE_CAUSE: 'it''s\n      two lines'",
    ] {
        let text = format!("version: 0.2\nx: &x anchored\nenv:\n  variables:\n    A: 1\n    {old}\n    Z: last\n");
        let out = edited(&text, &vars());
        assert_eq!(inject(&text, &vars()).expect("inject").overridden, ["PAGURE_CAUSE"]);
        assert!(out.contains("    A: 1\n") && out.contains("    Z: last\n") && out.contains("x: &x anchored"), "{out}");
    }
    // The comment after a quoted or flow value stays (the parser's spans include it).
    for old in ["\"old\"  # why", "'it''s' # why", "[a, b]  # why", "{a: \"b\"} # why", "\"a\\\"\" # why"] {
        let text = format!("version: 0.2\nenv:\n  variables:\n    PAGURE_CAUSE: {old}\n    Z: 1\n");
        let out = edited(&text, &vars());
        assert!(
            out.contains("    PAGURE_CAUSE: \"7\"  # why\n") || out.contains("    PAGURE_CAUSE: \"7\" # why\n"),
            "{out}"
        );
        assert_eq!(edited(&out, &vars()), out, "a second injection changes nothing");
    }
    edited("version: 0.2\nenv: {variables: {PAGURE_CAUSE: x, A: b}}\n", &vars());
    edited("version: 0.2\nenv: {variables: {\"PAGURE_CAUSE\":x}}\n", &vars());
    edited("version: 0.2\nenv: {variables: {A: b, PAGURE_CAUSE: }}\n", &vars());
    edited("version: 0.2\nenv: {variables: {A: b, PAGURE_CAUSE}}\n", &vars());
}

#[test]
fn flow_mappings_are_edited_in_flow_style() {
    for text in [
        "{version: 0.2, env: {variables: {MODE: fast, PAGURE_BRANCH: ignored}}, phases: {build: {commands: [make]}}}",
        "version: 0.2\nenv:\n  variables: {A: b,}\n",
        "version: 0.2\nenv:\n  variables: {\n    A: b, # a comment, with a comma\n    C: d # and one without\n  }\n",
        "version: 0.2\nenv:\n  variables: { A: b, C: }\n",
        "version: 0.2\nenv:\n  variables: {A, B}\n",
        "version: 0.2\nenv:\n  variables: { }\n",
        "{version: 0.2}",
        "{version: 0.2, x: y,}\n",
    ] {
        let out = edited(text, &vars());
        assert_eq!(out.lines().count(), text.lines().count(), "{out}");
    }
}

#[test]
fn explicit_keys_win_over_merged_ones() {
    let text =
        "version: 0.2\nbase: &base\n  PAGURE_CAUSE: theirs\n  LANG: C\nenv:\n  variables:\n    <<: *base\n    A: b\n";
    let out = edited(text, &vars());
    let mut value: Value = yaml_serde::from_str(&out).expect("yaml");
    value.apply_merge().expect("merge");
    assert_eq!(value["env"]["variables"]["PAGURE_CAUSE"], "7");
    assert_eq!(value["env"]["variables"]["LANG"], "C");
    // A `<<` that may bring the `env` or `variables` being created: refused.
    for (text, at) in [
        ("version: 0.2\nbase: &base {env: {variables: {A: b}}}\n<<: *base\n", "env"),
        ("version: 0.2\nbase: &base {variables: {A: b}}\nenv:\n  <<: *base\n", "env.variables"),
    ] {
        match inject(text, &vars()) {
            Err(BuildspecError::CannotEdit { at: found, reason }) => {
                assert!(found == at && reason.contains("<<"), "{reason}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    // With the key written out, the explicit one is edited and wins.
    edited("version: 0.2\nbase: &base {variables: {A: b}}\nenv:\n  <<: *base\n  variables: {C: d}\n", &vars());
}

#[test]
fn tabs_crlf_and_byte_order_mark() {
    let out = edited("version: \t0.2\nenv:\n  variables:\n    A: \tb\t# tab\n", &vars());
    assert!(out.contains("    A: \tb\t# tab\n    PAGURE_CAUSE: \"7\"\n"), "{out}");
    // Tabs as indentation, or right after `:`, are refused by YAML 1.1 readers (PyYAML)
    // and by the editor's: refused as malformed, never rewritten.
    for text in ["version: 0.2\nenv:\n\tvariables: {}\n", "version:\t0.2\n"] {
        assert!(matches!(inject(text, &vars()), Err(BuildspecError::Malformed { .. })), "{text:?}");
    }
    let text = "version: 0.2\r\nenv:\r\n  variables:\r\n    A: b\r\nphases: {}\r\n";
    let out = edited(text, &vars());
    assert_eq!(out.matches('\n').count(), out.matches("\r\n").count(), "{out:?}");
    assert!(is_subsequence(text, &out));
    let out = edited("\u{feff}version: 0.2\r\nphases: {}", &vars());
    assert!(out.starts_with("\u{feff}version: 0.2\r\nphases: {}\r\nenv:\r\n  variables:\r\n"), "{out:?}");
    let out = edited("\u{feff}version: 0.2\nx: |\n  no break at the end", &vars());
    assert!(out.starts_with("\u{feff}env:\n"), "{out:?}");
    for text in ["version: 0.2\rphases: {}\r", "version: 0.2\nx: \"a\u{2028}b\"\n", "version: 0.2\n# \u{85}\n"] {
        assert!(matches!(inject(text, &vars()), Err(BuildspecError::CannotEdit { .. })), "{text:?}");
    }
}

#[test]
fn comments_anchors_and_quoting_stay_as_written() {
    let text = "# CI for demo\nversion: 0.2 # always\nx-flags: &flags\n  - \"yes\"\n  - 'off'\n  - \"1:20\"\n  - \"1_000\"\n  - \"2001-12-14\"\nenv:\n  git-credential-helper: yes\n  variables:\n    # the mode\n    MODE: \"on\"\nphases:\n  build:\n    commands: *flags\n";
    let out = edited(text, &vars());
    assert!(is_subsequence(text, &out), "{out}");
    assert!(out.starts_with(&text[..text.find("phases:").expect("phases")]), "{out}");
}

#[test]
fn refusals_say_why() {
    let cases: [(&str, &str); 14] = [
        ("version: 0.2\nphases: [\n", "line"),
        ("- a\n- b\n", "not a mapping"),
        ("", "not a mapping"),
        ("phases: {}\n", "(none)"),
        ("version: 0.1\n", "0.1"),
        ("version: [0.2]\n", "(a list)"),
        ("version: 0.2\nenv: [a]\n", "`env`"),
        ("version: 0.2\nenv:\n  variables: text\n", "`env.variables`"),
        ("version: 0.2\nversion: 0.2\n", "duplicate"),
        ("version: 0.2\nenv:\n  variables: {PAGURE_CAUSE: a, PAGURE_CAUSE: b}\n", "env.variables.PAGURE_CAUSE"),
        ("version: 0.2\n---\nversion: 0.2\n", "more than one YAML document"),
        ("version: 0.2\ne: &e {variables: {}}\nenv: *e\n", "alias"),
        ("version: 0.2\nenv: &e {variables: {}}\nbatch: {env: *e}\n", "aliased"),
        ("version: 0.2\nenv:\n  variables:\n    PAGURE_CAUSE: &c x\n    OTHER: *c\n", "anchor"),
    ];
    for (text, needle) in cases {
        let err = inject(text, &vars()).expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    let err = inject("version: 0.2\nphases: [\n", &vars()).expect_err("malformed");
    assert!(matches!(err, BuildspecError::Malformed { line: Some(_), .. }), "{err:?}");
    assert_eq!(inject(&"#".repeat(MAX_INPUT_BYTES + 1), &vars()), Err(BuildspecError::TooLarge));
    for text in ["version: 0.2\n? env\n:\n", "version: 0.2\nenv:\n  variables:\n    ? PAGURE_CAUSE\n    : x\n"] {
        assert!(matches!(inject(text, &vars()), Err(BuildspecError::CannotEdit { .. })), "{text}");
    }
    assert!(matches!(inject("version: 0.2\n!!str env: {}\n", &vars()), Err(BuildspecError::CannotEdit { .. })));
    assert!(matches!(inject("version: 0.2\nk: &k env\n*k : {}\n", &vars()), Err(BuildspecError::CannotEdit { .. })));
}

#[test]
fn versions_written_as_0_2() {
    for version in ["0.2", "\"0.2\"", "'0.2'", "0.20", "!!float 0.2"] {
        edited(&format!("version: {version}\n"), &vars());
    }
}

#[test]
fn names_and_values_read_back_as_strings() {
    let variables: Vec<(&str, String)> = GEN_VALUES
        .iter()
        .zip(["PAGURE_X", "Y", "on", "A_1", "x y"].iter().cycle())
        .map(|(v, n)| (*n, (*v).to_owned()))
        .collect();
    for chunk in variables.chunks(5) {
        let out = edited("version: 0.2\n", chunk);
        let value: Value = yaml_serde::from_str(&out).expect("yaml");
        for (name, want) in chunk {
            assert_eq!(value["env"]["variables"][*name], Value::from(want.as_str()), "{name} in\n{out}");
        }
    }
    // A name given twice: its last value, once.
    let out = edited("version: 0.2\n", &[("PAGURE_A", "1".into()), ("PAGURE_A", "2".into())]);
    assert_eq!(out.matches("PAGURE_A").count(), 1, "{out}");
    // No variables: the text as it was.
    assert_eq!(inject("version: 0.2 # x\n", &[]).expect("inject").text, "version: 0.2 # x\n");
}

/// Alias bombs are refused after counting what they would expand to, never expanding
/// them; below the bound, aliases stay references. (How fast, with how much memory:
/// `cargo bench -p bridge-core --bench buildspec`.)
#[test]
fn alias_bombs_are_refused_without_expanding() {
    let mut laughs = String::from("version: 0.2\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    let flat = |aliases: usize| {
        format!("version: 0.2\nbig: &a {}\nlist:\n{}", "x".repeat(100_000), "  - *a\n".repeat(aliases))
    };
    for text in [laughs, flat(2_000), flat(41)] {
        assert_eq!(inject(&text, &vars()), Err(BuildspecError::Expands));
    }
    let out = edited(&flat(40), &vars());
    assert!(out.starts_with(&flat(40)), "appended only");
    let recursive = "version: 0.2\nx: &x [a, *x]\n";
    assert!(matches!(
        inject(recursive, &vars()),
        Err(BuildspecError::CannotEdit { .. } | BuildspecError::Malformed { .. })
    ));
    let many: String = (0..=MAX_ANCHORS).map(|i| format!("- &a{i} x\n")).collect();
    let err = inject(&format!("version: 0.2\nlist:\n{many}"), &vars()).expect_err("anchors");
    assert!(err.to_string().contains("anchors"), "{err}");
}

/// The self-check sees what a YAML 1.2 round trip would lose: quotes, aliases, anchors.
#[test]
fn self_check_sees_lost_quotes_and_expanded_aliases() {
    let text = "version: 0.2\na: &x \"yes\"\nb: *x\nc: 1\n";
    let document = Reader::read(text, &[], None).expect("read");
    assert_eq!(digest_of(text).expect("digest"), document.expected);
    for changed in [
        "version: 0.2\na: &x yes\nb: *x\nc: 1\n",
        "version: 0.2\na: &x \"yes\"\nb: \"yes\"\nc: 1\n",
        "version: 0.2\na: \"yes\"\nb: \"yes\"\nc: 1\n",
        "version: 0.2\na: &x \"yes\"\nb: *x\nc: \"1\"\n",
        "version: 0.2\na: &x \"yes\"\nb: *x\n",
        "version: 0.2\na: &x \"yes\"\nb: *x\nc: !!int 1\n",
    ] {
        assert_ne!(digest_of(changed).expect("digest"), document.expected, "{changed}");
    }
}

/// Twelve realistic buildspecs and the adversarial ones of tests/fixtures/buildspecs.
#[test]
fn corpus_reads_as_input_plus_variables() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/buildspecs");
    let files = corpus_files(&dir);
    assert!(files.len() >= 12, "{} buildspecs", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        edited(&text, &generate_variables(7));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Generated documents (tests/fixtures/buildspecs/generate.rs): the edited text reads
    /// as the original plus the variables, and when nothing was replaced, it holds the
    /// original's every character in order.
    #[test]
    fn generated_buildspecs_read_as_input_plus_variables(seed in any::<u64>()) {
        let text = generate_buildspec(seed);
        let variables = generate_variables(seed);
        let out = edited(&text, &variables);
        let replaced = ["env: ~", "env: null", "variables: ~", "variables: null", "PAGURE_"].iter().any(|s| text.contains(s));
        prop_assert!(replaced || is_subsequence(&text, &out), "seed {}:\n{}\n=>\n{}", seed, text, out);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[a-z:\\-#&*\\[\\]{}|>'\" \n\t,?!~]{0,120}") {
        let _ = inject(&format!("version: 0.2\n{text}"), &vars());
    }
}
