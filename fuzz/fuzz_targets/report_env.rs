#![no_main]
//! What a build's environment says to the `report` command and the report stage: the
//! PAGURE_* and CODEBUILD_* variables (as a JSON object of strings). A flag that comes out
//! must be one Pagure accepts: uid of at most 32 characters, a URL Pagure's rule takes.
use std::collections::BTreeMap;

use bridge_core::report::{Correlation, flag_from_build_env};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = serde_json::from_slice::<BTreeMap<String, String>>(data) else { return };
    let _ = Correlation::from_variables(&env);
    if let Ok((target, flag)) = flag_from_build_env(&env, None, None, None, "AWS CodeBuild") {
        assert!(flag.uid.len() <= 32);
        assert!(bridge_core::forge::url_acceptable(&flag.url));
        assert!(flag.check().is_ok());
        let _ = bridge_pagure::api_path(&target);
    }
});
