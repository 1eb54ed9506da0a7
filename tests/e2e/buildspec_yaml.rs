//! The injected buildspec read by other YAML readers than the editor's own: PyYAML (YAML 1.1,
//! as CodeBuild reads buildspecs; its pure-Python loader and its libyaml one) and yaml_serde
//! (libyaml events, YAML 1.2 values). For the buildspec corpus (tests/fixtures/buildspecs)
//! and a few hundred generated documents, each reader sees the edited buildspec as the
//! original plus `env.variables.PAGURE_*` set to the injected strings — strings, never
//! booleans, integers or dates — with merges (`<<`) applied and everything else as it was.

use std::io::Write;
use std::process::{Command, Stdio};

use yaml_serde::{Mapping, Value};

include!("../fixtures/buildspecs/generate.rs");

/// How many generated documents each run checks (on top of the corpus).
const GENERATED: u64 = 300;

/// Reads every case (JSON lines: name, input, output, variables) with each PyYAML loader and
/// prints the failures as a JSON list. Values are compared with their types (`True` is not
/// `1` here), mappings without regard to order (the editor's own tests check order).
const PYYAML_CHECK: &str = r#"
import base64, datetime, json, sys, yaml

def norm(x):
    if isinstance(x, bool): return ["bool", x]
    if isinstance(x, int): return ["int", str(x)]
    if isinstance(x, float): return ["float", repr(x)]
    if x is None: return ["null"]
    if isinstance(x, str): return ["str", x]
    if isinstance(x, (datetime.date, datetime.datetime)): return ["date", x.isoformat()]
    if isinstance(x, bytes): return ["binary", base64.b64encode(x).decode()]
    if isinstance(x, list): return ["seq", [norm(i) for i in x]]
    if isinstance(x, dict):
        return ["map", sorted(([norm(k), norm(v)] for k, v in x.items()), key=json.dumps)]
    raise TypeError(type(x))

loaders = [("SafeLoader", yaml.SafeLoader)]
if yaml.__with_libyaml__:
    loaders.append(("CSafeLoader", yaml.CSafeLoader))
failures, checked = [], 0
for line in sys.stdin:
    case = json.loads(line)
    for loader_name, loader in loaders:
        where = f"{case['name']} ({loader_name})"
        try:
            expected = yaml.load(case["input"], Loader=loader)
        except yaml.YAMLError as e:
            failures.append(f"{where}: the original does not load: {e}")
            continue
        try:
            found = yaml.load(case["output"], Loader=loader)
        except yaml.YAMLError as e:
            failures.append(f"{where}: the edited buildspec does not load: {e}")
            continue
        if expected.get("env") is None:
            expected["env"] = {}
        if expected["env"].get("variables") is None:
            expected["env"]["variables"] = {}
        for name, value in case["variables"]:
            expected["env"]["variables"][name] = value
        if norm(found) != norm(expected):
            failures.append(f"{where}: reads as {norm(found)!r}, not {norm(expected)!r}")
        for name, value in case["variables"]:
            got = found["env"]["variables"][name]
            if type(got) is not str or got != value:
                failures.append(f"{where}: {name} reads as {got!r} ({type(got).__name__}), not {value!r}")
        checked += 1
print(json.dumps({"checked": checked, "loaders": [n for n, _ in loaders], "failures": failures}))
"#;

struct Case {
    name: String,
    input: String,
    output: String,
    variables: Vec<(&'static str, String)>,
}

fn cases() -> Vec<Case> {
    let dir = e2e_tests::root().join("tests/fixtures/buildspecs");
    let files = corpus_files(&dir);
    assert!(files.len() >= 16, "{} buildspecs in {}", files.len(), dir.display());
    let mut cases: Vec<Case> = files
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            Case::injected(name, std::fs::read_to_string(path).expect("read"), generate_variables(i as u64))
        })
        .collect();
    cases.extend((0..GENERATED).map(|seed| {
        let seed = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Case::injected(format!("generated seed {seed}"), generate_buildspec(seed), generate_variables(seed))
    }));
    cases
}

impl Case {
    fn injected(name: String, input: String, variables: Vec<(&'static str, String)>) -> Case {
        let output =
            bridge_core::buildspec::inject(&input, &variables).unwrap_or_else(|e| panic!("{name}: {e}\n{input}")).text;
        Case { name, input, output, variables }
    }
}

/// YAML 1.2 values (yaml_serde), merges applied. yaml_serde hands libyaml UTF-8 as such, so
/// a byte order mark would be content to it: it is an encoding mark, taken off here.
fn yaml12(name: &str, text: &str) -> Value {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut value: Value = yaml_serde::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    value.apply_merge().unwrap_or_else(|e| panic!("{name}: {e}"));
    value
}

/// The mapping under `key`, created when absent or null.
fn child<'v>(parent: &'v mut Value, key: &str) -> &'v mut Mapping {
    let slot = parent.as_mapping_mut().expect("mapping").entry(Value::from(key)).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Mapping(Mapping::new());
    }
    slot.as_mapping_mut().expect("mapping")
}

#[test]
fn injected_buildspecs_read_as_the_original_plus_the_variables_in_yaml_1_2() {
    let cases = cases();
    for case in &cases {
        let mut expected = yaml12(&case.name, &case.input);
        child(&mut expected, "env");
        let variables = child(expected.get_mut("env").expect("env"), "variables");
        for (name, value) in &case.variables {
            variables.insert(Value::from(*name), Value::from(value.as_str()));
        }
        let found = yaml12(&case.name, &case.output);
        assert_eq!(found, expected, "{}:\n{}\n=>\n{}", case.name, case.input, case.output);
        for (name, value) in &case.variables {
            assert_eq!(found["env"]["variables"][*name], Value::String(value.clone()), "{}: {name}", case.name);
        }
    }
}

#[test]
fn injected_buildspecs_read_as_the_original_plus_the_variables_in_yaml_1_1() {
    let cases = cases();
    let mut python = Command::new(e2e_tests::venv().join("bin/python"))
        .args(["-c", PYYAML_CHECK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python from the test venv (scripts/setup-test-env)");
    let mut stdin = python.stdin.take().expect("stdin");
    for case in &cases {
        let line = serde_json::json!({
            "name": case.name,
            "input": case.input,
            "output": case.output,
            "variables": case.variables,
        });
        writeln!(stdin, "{line}").expect("write");
    }
    drop(stdin);
    let out = python.wait_with_output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let failures = report["failures"].as_array().expect("failures");
    assert!(failures.is_empty(), "{} failures, first ones: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
    // Every case read by every loader (PyYAML's wheels ship the libyaml one too).
    let loaders = report["loaders"].as_array().expect("loaders").len();
    assert_eq!(report["checked"].as_u64(), Some((cases.len() * loaders) as u64), "{report}");
}
