//! The one answer every stage needs from a failure: will trying again help?
//!
//! Each error type says it once, through [`Transience`]; the work stage turns it into "back
//! on the queue" or "an `error` flag now", the report stage into "let EventBridge retry" or
//! "log and drop", the accept edge into 503 or 4xx.

/// Whether a failed step is worth another attempt later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// The same step may succeed later: an outage, a throttle, a time limit.
    Transient,
    /// It will fail the same way again: bad input, a refusal, a missing setting.
    Terminal,
}

impl Retry {
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::Transient => "transient",
            Retry::Terminal => "terminal",
        }
    }
}

/// Implemented by every error a stage may see, so the decision is made in one place per
/// error type and nowhere else.
pub trait Transience {
    fn retry(&self) -> Retry;

    fn is_transient(&self) -> bool {
        self.retry() == Retry::Transient
    }
}
