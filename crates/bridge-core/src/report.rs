//! Build states as Pagure flags: which flag a build request has, what each CodeBuild or
//! CodePipeline state change says on it, and how an event finds its build request again.
//!
//! One flag per build request: its `uid` comes from the request id, so every state of the
//! build (queued, running, finished) updates the same flag. A PR build flags the commit
//! that was built, on the target project's commit endpoint (a PR flag would land on
//! whatever head the PR has when the call is made, `CONTRACT.md` (a)).

pub mod events;
pub mod invoke;

mod build_env;
mod changes;
mod correlation;
mod service;
mod subject;

pub use build_env::*;
pub use changes::*;
pub use correlation::*;
pub use service::*;
pub use subject::*;

#[cfg(test)]
mod tests;
