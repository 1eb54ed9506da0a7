//! The project registry at 10,000 rules (5,000 exact, 5,000 patterns): what a cold start
//! pays to parse and compile the document, and what one lookup costs for an exact key, a key
//! only the last pattern matches, and keys nothing matches. The document's size is printed.

use std::collections::BTreeMap;
use std::hint::black_box;

use bridge_core::registry::{Deployment, Registry, RegistryDocument};
use criterion::{Criterion, criterion_group, criterion_main};

const NAMESPACES: [&str; 5] = ["rpms", "modules", "containers", "flatpaks", "tests"];
const PREFIXES: [&str; 8] = ["python3-", "perl-", "golang-github-", "rust-", "nodejs-", "ghc-", "texlive-", "R-"];
const WORDS: [&str; 10] =
    ["requests", "yaml", "cryptography", "serde", "lxml", "tokio", "pytest", "numpy", "sphinx", "click"];

fn name(i: usize) -> String {
    format!("{}{}{:05}", PREFIXES[i % PREFIXES.len()], WORDS[(i / 8) % WORDS.len()], i)
}

/// 5,000 exact rules (`<ns>/<name>`, some with their own settings), then 5,000 patterns
/// (`<ns>/<stem>-*`, one in ten `*/<stem>-*`), in the stored (pretty) form.
fn document() -> String {
    let mut rules = Vec::new();
    for i in 0..5_000 {
        let mut rule = serde_json::json!({"match": format!("{}/{}", NAMESPACES[i % 5], name(i))});
        if i % 7 == 0 {
            rule["buildspec"] = "ci/buildspec.yml".into();
        }
        if i % 11 == 0 {
            rule["approval_phrase"] = "/ok-to-test".into();
        }
        if i % 13 == 0 {
            rule["pipeline"] = "pcb-heavy".into();
        }
        rules.push(rule);
    }
    for i in 0..5_000 {
        let head = if i % 10 == 3 { "*" } else { NAMESPACES[i % 5] };
        let mut rule = serde_json::json!({"match": format!("{head}/stem{:05}-*", i)});
        if i % 9 == 0 {
            rule["untrusted_pipeline"] = "pcb-untrusted-2".into();
        }
        rules.push(rule);
    }
    let document = serde_json::json!({"version": 1, "defaults": {"allow_forks": true}, "rules": rules});
    let parsed: RegistryDocument = serde_json::from_value(document).expect("document");
    parsed.to_json()
}

fn compile(text: &str) -> Registry {
    let document = RegistryDocument::parse(text).expect("parse");
    Registry::compile(&BTreeMap::new(), Some(&document), &Deployment::example()).expect("compile")
}

fn bench(c: &mut Criterion) {
    let text = document();
    println!("registry document: 10,000 rules, {} bytes ({:.1} KiB)", text.len(), text.len() as f64 / 1024.0);
    let registry = compile(&text);
    assert_eq!(registry.len(), 10_000);

    // The last pattern is `tests/stem04999-*` (4999 % 10 != 3: a literal head).
    let exact = format!("rpms/{}", name(2_500));
    let last_pattern = "tests/stem04999-extras";
    let nothing_busy_head = "rpms/zz-nothing-matches";
    let nothing_other_head = "epel/zz-nothing-matches";
    for (key, matched) in
        [(exact.as_str(), true), (last_pattern, true), (nothing_busy_head, false), (nothing_other_head, false)]
    {
        assert_eq!(registry.get(key).is_some(), matched, "{key}");
    }
    let (_, source) = registry.lookup(last_pattern).expect("matched");
    println!("`{last_pattern}` is routed by {source}");

    let mut group = c.benchmark_group("registry_10k");
    group.bench_function("parse_and_compile", |b| b.iter(|| compile(black_box(&text))));
    group.bench_function("lookup_exact", |b| b.iter(|| registry.get(black_box(&exact))));
    group.bench_function("lookup_last_pattern", |b| b.iter(|| registry.get(black_box(last_pattern))));
    group.bench_function("lookup_no_match_busy_namespace", |b| b.iter(|| registry.get(black_box(nothing_busy_head))));
    group.bench_function("lookup_no_match_other_namespace", |b| b.iter(|| registry.get(black_box(nothing_other_head))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
