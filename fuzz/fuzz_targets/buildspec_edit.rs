#![no_main]
//! The buildspec editor on arbitrary text (a repository's default branch holds anything):
//! `inject` never panics, and when it accepts, what it wrote is one YAML document where
//! every injected variable reads back, in the editor's parser, as exactly the string given
//! (double-quoted, once, under `env.variables`), and injecting again changes nothing (all
//! names exist now, each replaced by the same text).
use libfuzzer_sys::fuzz_target;
use saphyr_parser::{Event, Parser, ScalarStyle};

/// The scalar values directly under `env.variables`, with their styles.
fn variables_of(text: &str) -> Vec<(String, String, ScalarStyle)> {
    struct Frame {
        mapping: bool,
        key: Option<String>,
        want_key: bool,
    }
    fn done(frames: &mut [Frame]) {
        if let Some(top) = frames.last_mut()
            && top.mapping
        {
            top.want_key = !top.want_key;
        }
    }
    let in_variables = |frames: &[Frame]| {
        frames.len() == 3
            && frames[0].key.as_deref() == Some("env")
            && frames[1].key.as_deref() == Some("variables")
            && frames[2].mapping
    };
    let mut frames: Vec<Frame> = Vec::new();
    let mut found = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, _) = item.expect("the injected buildspec parses");
        match event {
            Event::Scalar(value, style, _, _) => {
                let is_key = frames.last().is_some_and(|top| top.mapping && top.want_key);
                if is_key {
                    frames.last_mut().expect("top").key = Some(value.into_owned());
                } else if in_variables(&frames) {
                    found.push((frames[2].key.clone().unwrap_or_default(), value.into_owned(), style));
                }
                done(&mut frames);
            }
            Event::Alias(_) => {
                if let Some(top) = frames.last_mut().filter(|top| top.mapping && top.want_key) {
                    top.key = None;
                }
                done(&mut frames);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if let Some(top) = frames.last_mut().filter(|top| top.mapping && top.want_key) {
                    top.key = None;
                }
                let mapping = matches!(event, Event::MappingStart(..));
                frames.push(Frame { mapping, key: None, want_key: true });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                frames.pop();
                done(&mut frames);
            }
            _ => {}
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let vars = [
        ("PAGURE_CAUSE", "42".to_owned()),
        ("PAGURE_COMMIT", "1234567e12".to_owned()),
        ("PAGURE_BRANCH", "yes: \"no\"\\\n\t\u{85}\u{2028}".to_owned()),
        ("PAGURE_PR_ID", String::new()),
    ];
    let Ok(out) = bridge_core::buildspec::inject(text, &vars) else { return };
    let found = variables_of(&out.text);
    for (name, value) in &vars {
        let ours: Vec<_> = found.iter().filter(|(n, _, _)| n == name).collect();
        assert_eq!(ours.len(), 1, "{name} once under env.variables: {found:?}\n{}", out.text);
        assert_eq!((&ours[0].1, ours[0].2), (value, ScalarStyle::DoubleQuoted), "{name}\n{}", out.text);
    }
    let again = bridge_core::buildspec::inject(&out.text, &vars).expect("the injected buildspec is one again");
    assert_eq!(again.text, out.text, "injecting twice changes nothing");
    assert_eq!(again.overridden.len(), vars.len());
});
