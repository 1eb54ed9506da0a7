//! End-to-end and cross-crate tests: one binary, one module per area.

mod accept_table;
mod architecture;
mod buildspec_yaml;
mod burst;
mod codebuild_path;
mod faults;
mod git_fetch;
mod hostile_repos;
mod hostile_trees;
mod jenkins_client;
mod lambda_moto;
mod lambda_runtime;
mod local_http;
mod local_pipeline;
mod local_serve;
mod projects_cli;
mod report_flags;
mod s3_store;
mod sweep;
mod three_doors;
mod trust;
mod work_timing;
