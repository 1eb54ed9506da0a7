use std::collections::BTreeMap;

use bridge_core::metrics::Metric;
use serde_json::{Number, json};

use super::Measurement;

fn measurement(metric: Metric, value: Number, dimensions: &[(&str, &str)]) -> Measurement {
    Measurement {
        metric,
        value,
        dimensions: dimensions.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
    }
}

#[test]
fn a_refusal_is_kept_under_its_three_dimension_sets() {
    let properties = BTreeMap::from([("request_id".to_owned(), "abc".to_owned())]);
    let line = measurement(Metric::RequestsRefused, 1.into(), &[("Reason", "invalid_signature"), ("Class", "client")])
        .emf("pcb-AcceptFunction", 1_796_155_200_123, &properties);
    assert_eq!(
        line,
        json!({
            "_aws": {
                "Timestamp": 1_796_155_200_123u64,
                "CloudWatchMetrics": [{
                    "Namespace": "PagureCiBridge",
                    "Dimensions": [["FunctionName"], ["FunctionName", "Reason"], ["FunctionName", "Class"]],
                    "Metrics": [{"Name": "RequestsRefused", "Unit": "Count"}]
                }]
            },
            "FunctionName": "pcb-AcceptFunction",
            "Reason": "invalid_signature",
            "Class": "client",
            "RequestsRefused": 1,
            "request_id": "abc"
        })
    );
    // One line of JSON: CloudWatch reads one log event per line.
    assert!(!line.to_string().contains('\n'));
}

#[test]
fn counts_without_extra_dimensions_have_the_function_name_only() {
    for metric in [Metric::RequestsAccepted, Metric::BuildsStarted, Metric::FlagsPosted] {
        let line = measurement(metric, 1.into(), &[]).emf("f", 1, &BTreeMap::new());
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]), "{metric:?}");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": metric.name(), "Unit": "Count"}]));
        assert_eq!(line[metric.name()], 1);
        assert_eq!(line["FunctionName"], "f");
    }
}

#[test]
fn failures_are_kept_by_class() {
    let line = measurement(Metric::Failures, 1.into(), &[("Class", "terminal")]).emf("work", 5, &BTreeMap::new());
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName", "Class"]]));
    assert_eq!(line["Class"], "terminal");
    // A dimension set is declared only when each of its dimensions has a value.
    let line = measurement(Metric::Failures, 1.into(), &[("Class", "")]).emf("work", 5, &BTreeMap::new());
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
    assert!(line.get("Class").is_none());
    let line = measurement(Metric::RequestsRefused, 1.into(), &[("Class", "server")]).emf("a", 5, &BTreeMap::new());
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["FunctionName"], ["FunctionName", "Class"]])
    );
}

#[test]
fn durations_are_milliseconds() {
    let value = Number::from_f64(1234.567).expect("finite");
    let line = measurement(Metric::FetchDuration, value, &[]).emf("work", 7, &BTreeMap::new());
    assert_eq!(
        line["_aws"],
        json!({"Timestamp": 7, "CloudWatchMetrics": [{"Namespace": "PagureCiBridge", "Dimensions": [["FunctionName"]],
               "Metrics": [{"Name": "FetchDuration", "Unit": "Milliseconds"}]}]})
    );
    assert_eq!(line["FetchDuration"], 1234.567);
}

#[test]
fn the_function_name_and_metric_are_not_overridden_by_properties() {
    let properties = BTreeMap::from([
        ("FunctionName".to_owned(), "spoofed".to_owned()),
        ("FlagsPosted".to_owned(), "x".to_owned()),
        ("_aws".to_owned(), "x".to_owned()),
    ]);
    let line = measurement(Metric::FlagsPosted, 1.into(), &[("FunctionName", "spoofed")]).emf("report", 1, &properties);
    assert_eq!(line["FunctionName"], "report");
    assert_eq!(line["FlagsPosted"], 1);
    assert!(line["_aws"].is_object());
}
