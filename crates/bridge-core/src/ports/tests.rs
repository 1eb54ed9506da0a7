use std::error::Error as _;

use super::*;
use crate::retry::{Retry, Transience};

#[derive(Debug, thiserror::Error)]
#[error("outer")]
struct Outer(#[source] std::io::Error);

#[test]
fn a_cause_shows_and_chains_as_the_error_it_keeps() {
    let cause = ErrorCause::new(Outer(std::io::Error::other("inner")));
    assert_eq!(cause.to_string(), "outer");
    assert_eq!(cause.source().map(ToString::to_string).as_deref(), Some("inner"));
    assert!(cause.error().downcast_ref::<Outer>().is_some());
    let text = ErrorCause::from("S3 answered 503");
    assert_eq!((text.to_string(), text.source().is_none()), ("S3 answered 503".to_owned(), true));
    let copy = text.clone();
    assert_eq!(format!("{copy:?}"), "\"S3 answered 503\"");
}

#[test]
fn every_port_error_says_whether_to_try_again() {
    let io = || ErrorCause::from(std::io::Error::other("disk"));
    let cases: [(&dyn Transience, Retry); 9] = [
        (&QueueError::Full, Retry::Transient),
        (&QueueError::Unavailable(io()), Retry::Transient),
        (&SecretsError::Unavailable(io()), Retry::Transient),
        (&SecretsError::Malformed("line 1".into()), Retry::Transient),
        (&StoreError::Failed(io()), Retry::Transient),
        (&StoreError::Contended("the claim `k` kept changing".into()), Retry::Transient),
        (&StoreError::RefusedKey("../x".into()), Retry::Terminal),
        (&LookupError::Failed(io()), Retry::Transient),
        (&StartError::Terminal(io()), Retry::Terminal),
    ];
    for (index, (error, retry)) in cases.iter().enumerate() {
        assert_eq!(error.retry(), *retry, "case {index}");
    }
    assert_eq!(StoreError::Failed(io()).to_string(), "artifact store: disk");
    assert_eq!(StoreError::RefusedKey("../x".into()).to_string(), "artifact store: refusing key `../x`");
}
