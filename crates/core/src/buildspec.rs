//! Injects the trigger into a CodeBuild buildspec as `env.variables`.
//!
//! The buildspec always comes from the target project's default branch (an untrusted pull
//! request must not change the build); this module only edits it. Everything but the
//! injected variables stays as it was, keys in their order. YAML is read with `yaml_serde`,
//! the YAML organisation's maintained fork of the archived `serde_yaml`: same data model,
//! order-keeping mappings, and limits on recursion and alias expansion (a "billion laughs"
//! file is refused, not expanded). Comments are not kept; aliases and `<<` merge keys are
//! written out resolved: CodeBuild sees the same values.

use yaml_serde::{Mapping, Value};

use crate::model::{BuildRequest, Cause};

/// Largest buildspec read (bytes), and largest written after alias expansion.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildspecError {
    #[error("the buildspec is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    #[error("the buildspec is not valid YAML{at}: {problem}", at = .line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Malformed { line: Option<usize>, problem: String },
    #[error("the buildspec is not a mapping of keys (version, env, phases, …) at its top level")]
    NotAMapping,
    #[error("the buildspec has version {found}; CodeBuild buildspecs must say `version: 0.2`")]
    Version { found: String },
    #[error("the buildspec's `{key}` is not a mapping, so variables cannot be added to it")]
    NotAMappingAt { key: &'static str },
    #[error("the buildspec expands to more than {MAX_OUTPUT_BYTES} bytes (aliases)")]
    Expands,
}

/// The variables the pipeline is started with (never empty, so the pipeline declares them
/// all, and its CodeBuild action passes them on): enough for the report stage to find the
/// build request and the commit. `PAGURE_PR_ID` and `PAGURE_BRANCH_TO` stay in the buildspec
/// only, where they may be empty; the cause tells a PR number from a commit.
pub const PIPELINE_VARIABLES: [&str; 6] =
    ["PAGURE_REQUEST_ID", "PAGURE_PROJECT", "PAGURE_REPO", "PAGURE_CAUSE", "PAGURE_COMMIT", "PAGURE_BRANCH"];

/// The default value the pipelines declare for each of [`PIPELINE_VARIABLES`]: a run started
/// by hand ("Release change") carries it, and the report stage ignores that run.
pub const MANUAL_RUN: &str = "manual";

/// The variables a build gets, in this order. Empty values are kept so that every build
/// sees the same names (`PAGURE_BRANCH_TO` and `PAGURE_PR_ID` are empty for commit builds).
pub fn trigger_variables(request: &BuildRequest, commit: &str) -> Vec<(&'static str, String)> {
    let pr_id = match request.cause {
        Cause::PullRequest { id } => id.to_string(),
        Cause::Commit { .. } => String::new(),
    };
    vec![
        ("PAGURE_CAUSE", request.cause.as_trigger_value()),
        ("PAGURE_REPO", request.repo_url.clone()),
        ("PAGURE_BRANCH", request.branch.clone()),
        ("PAGURE_BRANCH_TO", request.branch_to.clone().unwrap_or_default()),
        ("PAGURE_COMMIT", commit.to_owned()),
        ("PAGURE_PR_ID", pr_id),
        ("PAGURE_PROJECT", request.project.target_fullname()),
        ("PAGURE_REQUEST_ID", request.request_id.clone()),
    ]
}

/// The result of an injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub text: String,
    /// Names the buildspec defined itself that the trigger's values replaced.
    pub overridden: Vec<String>,
}

/// Adds `variables` under `env.variables` (creating `env` and `variables` when absent). On a
/// name clash the trigger's value wins, in the position the buildspec gave the name.
pub fn inject(text: &str, variables: &[(&str, String)]) -> Result<Injected, BuildspecError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(BuildspecError::TooLarge);
    }
    let mut document: Value = yaml_serde::from_str(text).map_err(|e| BuildspecError::Malformed {
        line: e.location().map(|l| l.line()),
        problem: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
    })?;
    // Resolve `<<: *alias` merge keys first, so that every variable is a plain key and ours
    // cannot be shadowed by (or duplicate) a merged one.
    document.apply_merge().map_err(|e| BuildspecError::Malformed { line: None, problem: e.to_string() })?;
    let Value::Mapping(root) = &mut document else {
        return Err(BuildspecError::NotAMapping);
    };
    check_version(root.get("version"))?;
    let env = child_mapping(root, "env", "env")?;
    let vars = child_mapping(env, "variables", "env.variables")?;
    let mut overridden = Vec::new();
    for (name, value) in variables {
        if vars.insert(Value::from(*name), Value::from(value.clone())).is_some() {
            overridden.push((*name).to_owned());
        }
    }
    let text = yaml_serde::to_string(&document)
        .map_err(|e| BuildspecError::Malformed { line: None, problem: e.to_string() })?;
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(BuildspecError::Expands);
    }
    Ok(Injected { text, overridden })
}

fn check_version(version: Option<&Value>) -> Result<(), BuildspecError> {
    let ok = match version {
        Some(Value::Number(n)) => n.as_f64() == Some(0.2),
        Some(Value::String(s)) => s == "0.2",
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let found = match version {
        None => "(none)".to_owned(),
        Some(v) => yaml_serde::to_string(v).unwrap_or_default().trim().to_owned(),
    };
    Err(BuildspecError::Version { found })
}

/// The mapping under `key`, created empty when absent or null.
fn child_mapping<'a>(
    parent: &'a mut Mapping,
    key: &str,
    path: &'static str,
) -> Result<&'a mut Mapping, BuildspecError> {
    let slot = parent.entry(Value::from(key)).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Mapping(Mapping::new());
    }
    match slot {
        Value::Mapping(mapping) => Ok(mapping),
        _ => Err(BuildspecError::NotAMappingAt { key: path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(&'static str, String)> {
        vec![("PAGURE_CAUSE", "7".into()), ("PAGURE_COMMIT", "05bab967134e26fd2a307065b49ce0bc2a2063ed".into())]
    }

    #[test]
    fn creates_env_and_keeps_order() {
        let out = inject("version: 0.2\nphases:\n  build:\n    commands:\n      - make\n", &vars()).expect("inject");
        let value: Value = yaml_serde::from_str(&out.text).expect("yaml");
        let keys: Vec<_> = value.as_mapping().expect("map").keys().map(|k| k.as_str().expect("str")).collect();
        assert_eq!(keys, ["version", "phases", "env"]);
        assert_eq!(value["env"]["variables"]["PAGURE_CAUSE"], "7");
        assert!(out.overridden.is_empty());
    }

    #[test]
    fn ours_win_in_place() {
        let text = "version: 0.2\nenv:\n  variables:\n    A: one\n    PAGURE_CAUSE: mine\n    Z: last\n";
        let out = inject(text, &vars()).expect("inject");
        let value: Value = yaml_serde::from_str(&out.text).expect("yaml");
        let names: Vec<_> = value["env"]["variables"]
            .as_mapping()
            .expect("map")
            .keys()
            .map(|k| k.as_str().expect("s").to_owned())
            .collect();
        assert_eq!(names, ["A", "PAGURE_CAUSE", "Z", "PAGURE_COMMIT"]);
        assert_eq!(value["env"]["variables"]["PAGURE_CAUSE"], "7");
        assert_eq!(out.overridden, ["PAGURE_CAUSE"]);
    }

    #[test]
    fn numeric_looking_values_stay_strings() {
        let out = inject(
            "version: 0.2\n",
            &[
                ("PAGURE_COMMIT", "1234567e12".into()),
                ("PAGURE_PR_ID", "12".into()),
                ("X", "".into()),
                ("Y", "yes".into()),
            ],
        )
        .expect("inject");
        let value: Value = yaml_serde::from_str(&out.text).expect("yaml");
        for (name, want) in [("PAGURE_COMMIT", "1234567e12"), ("PAGURE_PR_ID", "12"), ("X", ""), ("Y", "yes")] {
            assert_eq!(value["env"]["variables"][name], Value::from(want), "{name} in\n{}", out.text);
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases: [(&str, &str); 7] = [
            ("version: 0.2\nphases: [\n", "line"),
            ("- a\n- b\n", "not a mapping"),
            ("phases: {}\n", "(none)"),
            ("version: 0.1\n", "0.1"),
            ("version: 0.2\nenv: [a]\n", "`env`"),
            ("version: 0.2\nenv:\n  variables: text\n", "`env.variables`"),
            ("version: 0.2\nversion: 0.2\n", "duplicate"),
        ];
        for (text, needle) in cases {
            let err = inject(text, &vars()).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let err = inject("version: 0.2\nphases: [\n", &vars()).expect_err("malformed");
        assert!(matches!(err, BuildspecError::Malformed { line: Some(_), .. }), "{err:?}");
        assert_eq!(inject(&"#".repeat(MAX_INPUT_BYTES + 1), &vars()), Err(BuildspecError::TooLarge));
    }

    /// Twelve realistic buildspecs (tests/fixtures/buildspecs): after injection each has the
    /// trigger's variables, and everything else is as it was, in the same order.
    #[test]
    fn corpus_keeps_everything_else() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/buildspecs");
        let mut files: Vec<_> = std::fs::read_dir(&dir).expect("corpus").map(|e| e.expect("entry").path()).collect();
        files.sort();
        assert!(files.len() >= 10, "{} buildspecs", files.len());
        let ours = [
            ("PAGURE_CAUSE", "42".to_owned()),
            ("PAGURE_BRANCH", "fix".to_owned()),
            ("PAGURE_BRANCH_TO", "".to_owned()),
            ("PAGURE_COMMIT", "05bab967134e26fd2a307065b49ce0bc2a2063ed".to_owned()),
        ];
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            let out = inject(&text, &ours).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let mut before: Value = yaml_serde::from_str(&text).expect("original");
            before.apply_merge().expect("merge");
            let mut after: Value = yaml_serde::from_str(&out.text).expect("output parses");
            let vars = after["env"]["variables"].as_mapping_mut().expect("env.variables");
            for (name, value) in &ours {
                assert_eq!(vars.remove(*name), Some(Value::from(value.as_str())), "{}: {name}", file.display());
            }
            // What injection created where the original had nothing, and what it replaced.
            let had = |key: &str| before.get("env").and_then(|e| e.get(key)).is_some_and(|v| !v.is_null());
            if !had("variables") {
                after["env"].as_mapping_mut().expect("env").remove("variables");
            }
            if before.get("env").is_none_or(Value::is_null) {
                assert!(after["env"].as_mapping().is_some_and(Mapping::is_empty), "{}", file.display());
                if before.get("env").is_some() {
                    after["env"] = Value::Null;
                } else {
                    after.as_mapping_mut().expect("root").remove("env");
                }
            }
            if let Some(vars) =
                before.get_mut("env").and_then(|e| e.get_mut("variables")).and_then(Value::as_mapping_mut)
            {
                for (name, _) in &ours {
                    vars.remove(*name);
                }
            }
            assert_eq!(after, before, "{}:\n{}", file.display(), out.text);
            // Mapping equality ignores order; the serialised forms follow it.
            let order = |v: &Value| yaml_serde::to_string(v).expect("serialise");
            assert_eq!(order(&after), order(&before), "{}: key order", file.display());
            assert_eq!(out.overridden.is_empty(), !text.contains("PAGURE_BRANCH"), "{}", file.display());
        }
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("version: 0.2\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        assert!(inject(&text, &vars()).is_err());
    }
}
