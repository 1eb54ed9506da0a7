//! The Lambda functions as a deployment runs them: a CloudFormation template resolver (the
//! functions' environment), a Runtime API emulator (the processes), and a fake CodePipeline
//! (moto has none that starts executions).

pub mod cfn;
pub mod fake_codepipeline;
pub mod runtime_api;
pub mod stack;
