#![no_main]
//! What EventBridge delivers to the report Lambda: any JSON, claiming to be a CodeBuild or
//! CodePipeline state change or not. Parsing never panics; a parsed CodeBuild change gives
//! a flag state and console link without panicking, and a pipeline change one too.
use bridge_core::report::BuildEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let objects = value.is_object() && value["detail"].is_object();
    let parsed = bridge_core::report::events::parse_event(value);
    if let Ok(Some(_)) = &parsed {
        // An event and its detail are objects; serde alone would read them from arrays.
        assert!(objects, "an event that is not objects was read");
    }
    match parsed {
        Ok(Some(BuildEvent::CodeBuild(change))) => {
            let _ = change.flag_state();
            let _ = change.console_url();
            let _ = bridge_core::report::Correlation::from_variables(&change.variables);
        }
        Ok(Some(BuildEvent::Pipeline(change))) => {
            let _ = change.flag_state(&Default::default());
        }
        Ok(None) | Err(_) => {}
    }
});
