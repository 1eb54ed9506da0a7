//! Every setting, declared once: its key in the file and in the environment, its type, its
//! default and its rule. Both sources read them through [`super::source::Source`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::project::{ProjectConfig, is_relative_path};
use super::source::{Fallback, Key, Setting, Wait};
use super::{
    DEFAULT_CODEBUILD_BUILDSPEC, DEFAULT_DEDUPE_WINDOW_SECONDS, DEFAULT_MAX_BODY_BYTES, DEFAULT_REBUILD_PHRASE,
};
use super::{DEFAULT_RETRY_FIRST_SECONDS, DEFAULT_RETRY_MAX_SECONDS};
use crate::forge::RetryPolicy;

/// Environment variables the Lambdas (and `pagure-ci-bridge projects` against a
/// deployment) read.
pub mod env {
    pub const QUEUE_URL: &str = "PCB_QUEUE_URL";
    pub const SECRET_ID: &str = "PCB_SECRET_ID";
    pub const SECRETS_TTL_SECONDS: &str = "PCB_SECRETS_TTL_SECONDS";
    /// How many secrets hold the secrets document (one holds at most 64 KiB).
    pub const SECRET_SHARDS: &str = "PCB_SECRET_SHARDS";
    /// TOML: one table per project, as under `[projects]` in the local file (small setups;
    /// the registry is how a deployment grows).
    pub const PROJECTS: &str = "PCB_PROJECTS";
    /// The project registry: an S3 object, read again after the TTL.
    pub const REGISTRY_BUCKET: &str = "PCB_REGISTRY_BUCKET";
    pub const REGISTRY_KEY: &str = "PCB_REGISTRY_KEY";
    pub const REGISTRY_TTL_SECONDS: &str = "PCB_REGISTRY_TTL_SECONDS";
    /// What the deployment gives every registry rule: its forge, its shared pipelines, and
    /// the prefix every pipeline a rule names must have.
    pub const PAGURE_URL: &str = "PCB_PAGURE_URL";
    pub const GIT_URL: &str = "PCB_GIT_URL";
    pub const PIPELINE: &str = "PCB_PIPELINE";
    pub const UNTRUSTED_PIPELINE: &str = "PCB_UNTRUSTED_PIPELINE";
    pub const PIPELINE_PREFIX: &str = "PCB_PIPELINE_PREFIX";
    pub const MAX_BODY_BYTES: &str = "PCB_MAX_BODY_BYTES";
    /// Comma-separated networks.
    pub const SOURCE_CIDRS: &str = "PCB_SOURCE_CIDRS";
    /// Newline-separated phrases.
    pub const REBUILD_PHRASES: &str = "PCB_REBUILD_PHRASES";
    /// The work Lambda's: the archive bucket, key prefix, KMS key, source action name,
    /// the queue's maxReceiveCount, fetch and archive limits.
    pub const BUCKET: &str = "PCB_BUCKET";
    pub const KEY_PREFIX: &str = "PCB_KEY_PREFIX";
    pub const KMS_KEY_ID: &str = "PCB_KMS_KEY_ID";
    pub const SOURCE_ACTION: &str = "PCB_SOURCE_ACTION";
    pub const MAX_RECEIVE_COUNT: &str = "PCB_MAX_RECEIVE_COUNT";
    pub const FETCH_TIMEOUT_SECONDS: &str = "PCB_FETCH_TIMEOUT_SECONDS";
    pub const MAX_FETCH_BYTES: &str = "PCB_MAX_FETCH_BYTES";
    pub const MAX_ARCHIVE_BYTES: &str = "PCB_MAX_ARCHIVE_BYTES";
    pub const MAX_ARCHIVE_ENTRIES: &str = "PCB_MAX_ARCHIVE_ENTRIES";
    pub const DEDUPE_WINDOW_SECONDS: &str = "PCB_DEDUPE_WINDOW_SECONDS";
    /// The work Lambda's retry schedule: the first wait, doubling up to the longest.
    pub const RETRY_FIRST_SECONDS: &str = "PCB_RETRY_FIRST_SECONDS";
    pub const RETRY_MAX_SECONDS: &str = "PCB_RETRY_MAX_SECONDS";
    pub const COMPRESSION_LEVEL: &str = "PCB_COMPRESSION_LEVEL";
    /// The path CodeBuild reads the buildspec from (the templates' `BuildSpecPath`).
    pub const CODEBUILD_BUILDSPEC: &str = "PCB_CODEBUILD_BUILDSPEC";
    /// The work and report Lambdas': how flags are posted.
    pub const FLAG_USERNAME: &str = "PCB_FLAG_USERNAME";
    pub const PAGURE_ATTEMPTS: &str = "PCB_PAGURE_ATTEMPTS";
    pub const PAGURE_TIMEOUT_SECONDS: &str = "PCB_PAGURE_TIMEOUT_SECONDS";
    /// The report Lambda's sweep (see `crate::sweep`).
    pub const SWEEP_AFTER_SECONDS: &str = "PCB_SWEEP_AFTER_SECONDS";
}

/// Declares each setting as a constant, and [`ALL`], every setting's key (the file's tables
/// are checked against it).
macro_rules! settings {
    ($($(#[$doc:meta])* $name:ident: $type:ty = $setting:expr;)*) => {
        $($(#[$doc])* pub(crate) const $name: Setting<$type> = $setting;)*
        pub(crate) const ALL: &[Key] = &[$($name.key),*];
    };
}

/// SQS's longest visibility timeout, and so the longest wait between attempts.
const TWELVE_HOURS: Duration = Duration::from_secs(43_200);

settings! {
    // Local mode's server.
    LISTEN: SocketAddr = Setting::new(Key::file("server.listen"), Fallback::To(|| SocketAddr::from(([127, 0, 0, 1], 8080))));
    QUEUE_CAPACITY: usize = Setting::new(Key::file("server.queue_capacity"), Fallback::To(|| 10_000))
        .valid(|n| *n >= 1, "must be at least 1");

    // Secrets: a file locally, Secrets Manager in AWS.
    /// JSON with the same layout as the Secrets Manager secret, relative to the file.
    SECRETS_FILE: PathBuf = Setting::new(Key::file("secrets.file"), Fallback::Unset);
    SECRET_ID: String = Setting::new(Key::env(env::SECRET_ID), Fallback::Unset);
    SECRETS_TTL: Duration = Setting::new(Key::env(env::SECRETS_TTL_SECONDS), Fallback::To(|| Duration::from_secs(300)));
    SECRET_SHARDS: u32 = Setting::new(Key::env(env::SECRET_SHARDS), Fallback::To(|| 1))
        .valid(|n| (1..=200).contains(n), "must be 1 to 200");
    /// The queue accept sends to and work consumes.
    QUEUE_URL: String = Setting::new(Key::env(env::QUEUE_URL), Fallback::Unset);

    // The accept stage.
    MAX_BODY_BYTES: usize =
        Setting::new(Key::both("accept.max_body_bytes", env::MAX_BODY_BYTES), Fallback::To(|| DEFAULT_MAX_BODY_BYTES))
            .valid(|n| (1024..=6 * 1024 * 1024).contains(n), "must be between 1024 and 6291456 (Lambda's payload limit)");
    /// Empty: every source address may call.
    SOURCE_CIDRS: Vec<IpNet> = Setting::new(Key::both("accept.source_cidrs", env::SOURCE_CIDRS), Fallback::To(Vec::new));
    REBUILD_PHRASES: Vec<String> = Setting::new(
        Key::both("accept.rebuild_phrases", env::REBUILD_PHRASES),
        Fallback::To(|| vec![DEFAULT_REBUILD_PHRASE.to_owned()]),
    );
    /// The inline projects, by key. One of them and the registry is required.
    PROJECTS: BTreeMap<String, ProjectConfig> = Setting::new(Key::both("projects", env::PROJECTS), Fallback::Unset);

    // The project registry: a file locally (relative to the configuration file), an S3
    // object in AWS; and what the deployment gives every rule.
    REGISTRY_FILE: PathBuf = Setting::new(Key::file("registry.file"), Fallback::Unset);
    REGISTRY_BUCKET: String = Setting::new(Key::env(env::REGISTRY_BUCKET), Fallback::Unset);
    REGISTRY_KEY: String = Setting::new(Key::env(env::REGISTRY_KEY), Fallback::To(|| "registry.json".into()));
    /// How long a read is kept; local edits should show quickly (the file is cheap to read).
    REGISTRY_TTL: Duration = Setting::new(
        Key::both("registry.ttl_seconds", env::REGISTRY_TTL_SECONDS),
        Fallback::PerSource { file: || Duration::from_secs(2), env: || crate::registry::DEFAULT_REGISTRY_TTL },
    );
    PAGURE_URL: String = Setting::new(Key::both("registry.pagure_url", env::PAGURE_URL), Fallback::Unset);
    GIT_URL: String = Setting::new(Key::both("registry.git_url", env::GIT_URL), Fallback::Unset);
    PIPELINE: String = Setting::new(Key::both("registry.pipeline", env::PIPELINE), Fallback::Unset);
    UNTRUSTED_PIPELINE: String =
        Setting::new(Key::both("registry.untrusted_pipeline", env::UNTRUSTED_PIPELINE), Fallback::Unset);
    PIPELINE_PREFIX: String = Setting::new(Key::both("registry.pipeline_prefix", env::PIPELINE_PREFIX), Fallback::Unset);

    // The work stage.
    /// Local mode stores archives here (relative to the configuration file).
    ARTIFACTS_DIR: PathBuf = Setting::new(Key::file("work.artifacts_dir"), Fallback::To(|| "artifacts".into()));
    /// The S3 bucket archives go to: optional locally (instead of `artifacts_dir`).
    BUCKET: String = Setting::new(Key::both("work.s3_bucket", env::BUCKET), Fallback::Unset);
    /// Local mode's S3 endpoint (an emulator); the Lambdas use the AWS environment's.
    S3_ENDPOINT: String = Setting::new(Key::file("work.s3_endpoint"), Fallback::Unset);
    KEY_PREFIX: String = Setting::new(Key::env(env::KEY_PREFIX), Fallback::To(|| "sources".into()));
    /// SSE-KMS key for archives; SSE-S3 when unset.
    KMS_KEY_ID: String = Setting::new(Key::env(env::KMS_KEY_ID), Fallback::Unset);
    SOURCE_ACTION: String = Setting::new(Key::env(env::SOURCE_ACTION), Fallback::To(|| "Source".into()));
    /// Deliveries of one request before it is given up (the queue's `maxReceiveCount`).
    MAX_ATTEMPTS: u32 = Setting::new(Key::both("work.max_attempts", env::MAX_RECEIVE_COUNT), Fallback::To(|| 5))
        .valid(|n| *n >= 1, "must be at least 1");
    RETRY_FIRST: Wait = Setting::new(
        Key::both("work.retry_delay_ms", env::RETRY_FIRST_SECONDS),
        Fallback::PerSource {
            file: || Wait(Duration::from_secs(1)),
            env: || Wait(Duration::from_secs(DEFAULT_RETRY_FIRST_SECONDS)),
        },
    )
    .valid(|w| w.0 <= TWELVE_HOURS, "must be at most 43200 seconds (12 hours, SQS's longest visibility timeout)");
    RETRY_MAX: Wait = Setting::new(
        Key::both("work.retry_max_ms", env::RETRY_MAX_SECONDS),
        Fallback::To(|| Wait(Duration::from_secs(DEFAULT_RETRY_MAX_SECONDS))),
    )
    .valid(|w| w.0 <= TWELVE_HOURS, "must be at most 43200 seconds (12 hours, SQS's longest visibility timeout)");
    FETCH_TIMEOUT: Duration = Setting::new(
        Key::both("work.fetch_timeout_seconds", env::FETCH_TIMEOUT_SECONDS),
        Fallback::To(|| Duration::from_secs(300)),
    );
    MAX_FETCH_BYTES: u64 = Setting::new(Key::both("work.max_fetch_bytes", env::MAX_FETCH_BYTES), Fallback::To(|| 2 << 30));
    MAX_ARCHIVE_BYTES: u64 =
        Setting::new(Key::both("work.max_archive_bytes", env::MAX_ARCHIVE_BYTES), Fallback::To(|| 4 << 30));
    MAX_ARCHIVE_ENTRIES: u64 =
        Setting::new(Key::both("work.max_archive_entries", env::MAX_ARCHIVE_ENTRIES), Fallback::To(|| 200_000));
    DEDUPE_WINDOW: Duration = Setting::new(
        Key::both("work.dedupe_window_seconds", env::DEDUPE_WINDOW_SECONDS),
        Fallback::To(|| Duration::from_secs(DEFAULT_DEDUPE_WINDOW_SECONDS)),
    );
    COMPRESSION_LEVEL: u8 = Setting::new(
        Key::both("work.compression_level", env::COMPRESSION_LEVEL),
        Fallback::To(|| crate::archive::DEFAULT_COMPRESSION_LEVEL),
    )
    .valid(|n| (1..=9).contains(n), "must be 1 (fastest) to 9 (smallest)");
    CODEBUILD_BUILDSPEC: String = Setting::new(
        Key::both("work.codebuild_buildspec", env::CODEBUILD_BUILDSPEC),
        Fallback::To(|| DEFAULT_CODEBUILD_BUILDSPEC.to_owned()),
    )
    .valid(
        |path| is_relative_path(path),
        "the relative path CodeBuild reads in the archive, such as buildspec.yml or ci/buildspec.yml",
    );

    // The report stage: how flags are posted.
    FLAG_USERNAME: String = Setting::new(
        Key::both("report.flag_username", env::FLAG_USERNAME),
        Fallback::To(|| crate::forge::DEFAULT_FLAG_USERNAME.to_owned()),
    )
    .valid(|name| !name.trim().is_empty(), "must not be empty");
    PAGURE_ATTEMPTS: u32 = Setting::new(
        Key::both("report.pagure_attempts", env::PAGURE_ATTEMPTS),
        Fallback::To(|| RetryPolicy::default().attempts),
    )
    .valid(|n| (1..=10).contains(n), "must be between 1 and 10");
    PAGURE_TIMEOUT: Duration = Setting::new(
        Key::both("report.pagure_timeout_seconds", env::PAGURE_TIMEOUT_SECONDS),
        Fallback::To(|| RetryPolicy::default().timeout),
    )
    .valid(|t| !t.is_zero(), "must be at least 1");
    /// Flags still pending this long after their pipeline started are settled by the sweep.
    SWEEP_AFTER: Duration = Setting::new(
        Key::both("report.sweep_after_seconds", env::SWEEP_AFTER_SECONDS),
        Fallback::To(|| Duration::from_secs(crate::sweep::DEFAULT_SWEEP_AFTER_SECONDS)),
    )
    .valid(|t| *t >= Duration::from_secs(60), "must be at least 60");
}

/// The `[registry]` table: with it, `registry.file` is required.
pub(crate) const REGISTRY_TABLE: Key = Key::file("registry");

/// Where the registry is, in each source: the key errors about it name.
pub(crate) const REGISTRY_LOCATION: Key = Key { file: REGISTRY_FILE.key.file, env: REGISTRY_BUCKET.key.env };
