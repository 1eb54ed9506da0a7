#![no_main]
//! The repository allow-list (SSRF boundary): whatever passes is canonical and passes again.
use std::sync::LazyLock;

use bridge_core::validate::RepoPolicy;
use libfuzzer_sys::fuzz_target;

static POLICIES: LazyLock<[RepoPolicy; 2]> = LazyLock::new(|| {
    [
        RepoPolicy::new("https://pagure.io", "rpms/demo", true).expect("policy"),
        RepoPolicy::new("git://127.0.0.1:5602/git", "demo", true).expect("policy"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Ok(candidate) = std::str::from_utf8(data) else { return };
    for policy in POLICIES.iter() {
        if let Ok((url, project)) = policy.check("k", candidate) {
            assert_eq!(policy.check("k", &url), Ok((url.clone(), project)), "canonical URL must pass again");
            assert!(!url.contains(".."), "{url}");
        }
    }
});
