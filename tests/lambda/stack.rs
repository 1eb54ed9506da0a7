//! The test stack the Lambda runs use (the e2e test `lambda_runtime` and the cold-start
//! bench): the template's queues, buckets and secret in moto, its functions as process specs
//! for the Runtime API emulator, the binaries built for the host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use super::cfn::{Reference, Template, pseudo_parameter};
use super::fake_codepipeline::PipelineSpec;
use super::runtime_api::{ACCOUNT, FunctionSpec, REGION};
use crate::{Moto, root};

pub const STACK: &str = "pcb-e2e";

/// The three binaries built for the host (`cargo build -p accept -p work -p report`, a no-op
/// when they are fresh), in `release` or the profile this program was built with; once per
/// process.
pub fn lambda_binaries(release: bool) -> BTreeMap<&'static str, PathBuf> {
    static BUILT: OnceLock<std::sync::Mutex<BTreeMap<bool, BTreeMap<&'static str, PathBuf>>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().expect("binaries");
    if let Some(found) = built.get(&release) {
        return found.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "-q", "--locked", "-p", "accept", "-p", "work", "-p", "report"]).current_dir(root());
    if release {
        command.arg("--release");
    }
    let status = command.status().expect("cargo build");
    assert!(status.success(), "building the Lambda binaries");
    // This program is <target>/<profile>/deps/<name> (a test) or <target>/<profile>/examples/<name>.
    let exe = std::env::current_exe().expect("this program");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir").to_owned();
    let dir = if release { profile_dir.parent().expect("target").join("release") } else { profile_dir };
    let found: BTreeMap<&'static str, PathBuf> = ["accept", "work", "report"]
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            assert!(path.exists(), "{} was not built", path.display());
            (name, path)
        })
        .collect();
    built.insert(release, found.clone());
    found
}

pub fn sam_template() -> Template {
    Template::load(&root().join("infra/sam/template.yaml"))
}

/// The test's stack: every queue, bucket and secret of the template created in moto (named
/// `<stack>-<logical id>`), other resources answered with the names and ARNs CloudFormation
/// would give them.
#[derive(Debug)]
pub struct TestStack {
    pub moto_endpoint: String,
    /// logical id → (Ref value, its attributes)
    pub resources: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

impl TestStack {
    pub async fn create(template: &Template, moto: &Moto, secret_json: &str) -> TestStack {
        let sdk = moto.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let mut resources = BTreeMap::new();
        for id in template.resources_of_type("AWS::SQS::Queue") {
            let fifo = template.resource(&id).and_then(|r| r.pointer("/Properties/FifoQueue")) == Some(&json!(true));
            let name = given_name(template, &id, "QueueName")
                .unwrap_or_else(|| format!("{STACK}-{id}{}", if fifo { ".fifo" } else { "" }));
            let mut create = sqs.create_queue().queue_name(&name);
            if fifo {
                create = create.attributes(QueueAttributeName::FifoQueue, "true");
            }
            let url = create.send().await.expect("create queue").queue_url().expect("url").to_owned();
            let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}");
            let attributes = [("Arn", arn), ("QueueName", name), ("QueueUrl", url.clone())];
            resources.insert(id, (url, attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
        }
        for id in template.resources_of_type("AWS::S3::Bucket") {
            let name = given_name(template, &id, "BucketName")
                .unwrap_or_else(|| format!("{STACK}-{}", id.to_ascii_lowercase()));
            s3.create_bucket().bucket(&name).send().await.expect("create bucket");
            let versioned =
                template.resource(&id).and_then(|r| r.pointer("/Properties/VersioningConfiguration/Status"))
                    == Some(&json!("Enabled"));
            if versioned {
                use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
                s3.put_bucket_versioning()
                    .bucket(&name)
                    .versioning_configuration(
                        VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
                    )
                    .send()
                    .await
                    .expect("versioning");
            }
            let attributes = [
                ("Arn", format!("arn:aws:s3:::{name}")),
                ("DomainName", format!("{name}.s3.amazonaws.com")),
                ("RegionalDomainName", format!("{name}.s3.{REGION}.amazonaws.com")),
            ];
            resources.insert(id, (name, attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
        }
        for id in template.resources_of_type("AWS::SecretsManager::Secret") {
            let name = given_name(template, &id, "Name").unwrap_or_else(|| format!("{STACK}-{id}"));
            let created =
                secrets.create_secret().name(&name).secret_string(secret_json).send().await.expect("create secret");
            // `Ref` of a secret is its ARN.
            let arn = created.arn().expect("arn").to_owned();
            resources.insert(id, (arn.clone(), BTreeMap::from([("Id".to_owned(), arn)])));
        }
        TestStack { moto_endpoint: moto.endpoint.clone(), resources }
    }

    /// The stack's answer for `reference` (pseudo parameters included).
    fn answer(&mut self, template: &Template, reference: &Reference) -> Option<String> {
        match reference {
            Reference::Ref(name) if name.starts_with("AWS::") => pseudo_parameter(name, STACK),
            Reference::Ref(id) => match self.resources.get(id) {
                Some((value, _)) => Some(value.clone()),
                None => self.named(template, id).map(|(name, _)| name),
            },
            Reference::GetAtt(id, attribute) => match self.resources.get(id) {
                Some((_, attributes)) => attributes.get(attribute).cloned(),
                None => {
                    let (_, arn) = self.named(template, id)?;
                    (attribute == "Arn").then_some(arn)
                }
            },
        }
    }

    /// Resources CloudFormation names from a `Name`-like property (or `<stack>-<id>`).
    fn named(&mut self, template: &Template, id: &str) -> Option<(String, String)> {
        let kind = template.resource_type(id)?.to_owned();
        let property = match kind.as_str() {
            "AWS::CodePipeline::Pipeline" | "AWS::CodeBuild::Project" => "Name",
            "AWS::IAM::Role" => "RoleName",
            "AWS::Logs::LogGroup" => "LogGroupName",
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => "FunctionName",
            _ => return None,
        };
        let given = template.resource(id)?.pointer(&format!("/Properties/{property}")).cloned();
        let name = match given {
            Some(value) => {
                let mut stack = |t: &Template, r: &Reference| self.answer(t, r);
                template.resolve(&value, &mut stack, &format!("{id}.{property}")).ok()??.as_str()?.to_owned()
            }
            None => format!("{STACK}-{id}"),
        };
        let arn = match kind.as_str() {
            "AWS::CodePipeline::Pipeline" => format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{name}"),
            "AWS::CodeBuild::Project" => format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{name}"),
            "AWS::IAM::Role" => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
            "AWS::Logs::LogGroup" => format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"),
            _ => format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"),
        };
        Some((name, arn))
    }

    pub fn resolve(&mut self, template: &Template, value: &Value, where_: &str) -> Result<Value, String> {
        let mut stack = |t: &Template, r: &Reference| self.answer(t, r);
        template.resolve(value, &mut stack, where_).map(|v| v.unwrap_or(Value::Null))
    }

    /// Every pipeline of the template, as the fake CodePipeline should know it.
    pub fn pipelines(&mut self, template: &Template) -> Vec<PipelineSpec> {
        let mut specs = Vec::new();
        for id in template.resources_of_type("AWS::CodePipeline::Pipeline") {
            let raw = template.resource(&id).expect("pipeline")["Properties"].clone();
            let properties =
                self.resolve(template, &raw, &format!("{id}.Properties")).unwrap_or_else(|e| panic!("{e}"));
            let actions: Vec<&Value> = properties["Stages"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|stage| stage["Actions"].as_array().into_iter().flatten())
                .collect();
            let source = actions
                .iter()
                .find(|a| a["ActionTypeId"]["Category"] == "Source" && a["ActionTypeId"]["Provider"] == "S3")
                .unwrap_or_else(|| panic!("{id} has no S3 source action"));
            let build = actions
                .iter()
                .find(|a| a["ActionTypeId"]["Provider"] == "CodeBuild")
                .unwrap_or_else(|| panic!("{id} has no CodeBuild action"));
            let flag = |v: &Value| v == &json!(true) || v == &json!("true");
            specs.push(PipelineSpec {
                name: properties["Name"].as_str().map_or_else(|| format!("{STACK}-{id}"), str::to_owned),
                source_action: source["Name"].as_str().expect("action name").to_owned(),
                source_bucket: source["Configuration"]["S3Bucket"].as_str().expect("S3Bucket").to_owned(),
                allow_key_override: flag(&source["Configuration"]["AllowOverrideForS3ObjectKey"]),
                variables: properties["Variables"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["Name"].as_str().map(str::to_owned))
                    .collect(),
                build_project: build["Configuration"]["ProjectName"].as_str().expect("ProjectName").to_owned(),
                build_environment: build["Configuration"]["EnvironmentVariables"].as_str().unwrap_or("[]").to_owned(),
            });
        }
        specs
    }

    /// A function of the template (by the binary it runs) as a process spec: the template's
    /// environment, memory and timeout, plus the test endpoints and dummy credentials.
    pub fn function(
        &mut self,
        template: &Template,
        binary: &str,
        codepipeline_endpoint: &str,
    ) -> Result<FunctionSpec, String> {
        self.function_built(template, binary, codepipeline_endpoint, false)
    }

    /// [`TestStack::function`] with the release build of the binary when `release`.
    pub fn function_built(
        &mut self,
        template: &Template,
        binary: &str,
        codepipeline_endpoint: &str,
        release: bool,
    ) -> Result<FunctionSpec, String> {
        let id = template.function_of_binary(binary)?;
        let mut stack = |t: &Template, r: &Reference| self.answer(t, r);
        let settings = template.function(&id, &mut stack)?;
        let mut test_environment: BTreeMap<String, String> = [
            ("AWS_ENDPOINT_URL", self.moto_endpoint.as_str()),
            ("AWS_ENDPOINT_URL_CODEPIPELINE", codepipeline_endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // Set by the Lambda service from the function's `LoggingConfig`, not its variables.
        test_environment.extend(settings.logging.clone());
        let logs = root().join("target/test-logs");
        std::fs::create_dir_all(&logs).expect("log folder");
        Ok(FunctionSpec {
            name: format!("{STACK}-{id}"),
            command: vec![lambda_binaries(release)[binary].display().to_string()],
            environment: settings.environment,
            test_environment,
            memory_mb: settings.memory_mb,
            timeout: Duration::from_secs(settings.timeout_seconds),
            working_dir: None,
            log_file: Some(logs.join(format!("e2e-lambda-{binary}-{}.jsonl", std::process::id()))),
        })
    }
}

/// A resource's own name property (`QueueName`, `BucketName`, `Name`), resolved against the
/// parameters and pseudo parameters (a name never refers to another resource here).
fn given_name(template: &Template, id: &str, property: &str) -> Option<String> {
    let value = template.resource(id)?.pointer(&format!("/Properties/{property}"))?.clone();
    let mut pseudo = |_: &Template, r: &Reference| match r {
        Reference::Ref(name) => pseudo_parameter(name, STACK),
        Reference::GetAtt(..) => None,
    };
    let resolved = template.resolve(&value, &mut pseudo, &format!("{id}.{property}")).unwrap_or_else(|e| panic!("{e}"));
    resolved?.as_str().map(str::to_owned)
}

/// A function URL event (payload format 2.0), as AWS delivers it to the accept function.
pub fn function_url_event(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert("host".into(), "abc123.lambda-url.us-east-1.on.aws".into());
    header_map.insert("x-forwarded-proto".into(), "https".into());
    header_map.insert("x-forwarded-for".into(), "203.0.113.9".into());
    for (name, value) in headers {
        header_map.insert(name.to_ascii_lowercase(), (*value).into());
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "curl/8.5.0"},
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:20:00:00 +0000", "timeEpoch": 1_796_155_200_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Where the demo project is configured: a registry object when the functions read one
/// (`PCB_REGISTRY_BUCKET`), else the template's first-project parameters.
pub async fn configure_project(
    template: Template,
    pagure_url: &str,
    git_url: &str,
) -> (Template, Option<(String, Value)>) {
    if template.has_parameter("ProjectKey") {
        let mut template = template;
        for (name, value) in [
            ("ProjectKey", "demo"),
            ("ProjectFullName", "demo"),
            ("PagureUrl", pagure_url),
            ("GitUrl", git_url),
            // The test's git server speaks plain HTTP; appended to the first project's table.
            ("ExtraProjectsToml", "allow_insecure_git_url = true"),
        ] {
            template = template.with_parameter(name, value).expect("parameter");
        }
        return (template, None);
    }
    let registry = json!({
        "version": 1,
        "defaults": {},
        "rules": [{"match": "demo", "project": "demo", "pagure_url": pagure_url, "git_url": git_url,
                   "allow_insecure_git_url": true}]
    });
    (template, Some(("registry.json".to_owned(), registry)))
}

/// Puts the registry [`configure_project`] made, if it made one, where the accept function
/// reads it: `PCB_REGISTRY_BUCKET`, under `PCB_REGISTRY_KEY` or else the registry's own key.
pub async fn put_registry(moto: &Moto, accept: &FunctionSpec, registry: Option<&(String, Value)>) {
    let Some((key, document)) = registry else { return };
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let bucket = accept.environment.get("PCB_REGISTRY_BUCKET").expect("PCB_REGISTRY_BUCKET");
    let key = accept.environment.get("PCB_REGISTRY_KEY").unwrap_or(key);
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(document.to_string().into_bytes().into())
        .send()
        .await
        .expect("registry");
}
