"""Invariants of the deployment templates, checked offline on the SAM template and on the
CDK app's synthesized template (run by scripts/check-infra):

- the build queue's visibility timeout is at least 6 x the work function's timeout, its
  redrive sends to a dead-letter queue after >= 5 receives, and the work function is told
  the same count;
- the work function's SQS source reports partial batch failures;
- the accept function has a public function URL (Pagure cannot sign requests);
- every function's IAM statements name only that function's own resources: no "*", and
  no reference to a resource outside its list;
- one parameter, BuildSpecPath (a safe relative path), is every CodeBuild project's
  Source.BuildSpec and the work function's PCB_CODEBUILD_BUILDSPEC, and no resource spells a
  buildspec file name of its own;
- PCB_UNTRUSTED_PIPELINE names a pipeline of the template, other than PCB_PIPELINE (the
  shared pair every registry rule defaults to), reading the same source bucket and key scheme through the action
  the work function overrides; its CodeBuild project, build role, pipeline role, artifact
  bucket and log group are all distinct from the trusted pipeline's; every statement of its
  build role (inline, attached, managed) allows only logs:CreateLogStream/PutLogEvents (and
  CreateLogGroup) on its own log group and s3:GetObject/GetObjectVersion on objects of its
  own artifact bucket; the project is not privileged, has no VPC, no secret variables (in the
  project or in the pipeline's action), no cache or file system, no customer KMS key; its
  artifact bucket is SSE-S3, versioned like the others, public access blocked, TLS only;
- both pipelines declare exactly the bridge's PIPELINE_VARIABLES (read from
  crates/bridge-core/src) and their build actions pass exactly those, as
  `#{variables.NAME}`, plus PAGURE_PIPELINE_EXECUTION_ID: no branch name or other value the
  PR author chooses is pasted into the action's JSON text;
- every CodeBuild role trusts codebuild.amazonaws.com alone;
- the work and report functions' pipeline grants cover both pipelines;
- the work function may s3:ListBucket its source bucket (PCB_BUCKET) without any Condition,
  and no other bucket: S3 answers a GetObject of a missing key with 404 only to a caller that
  may ListBucket, and a GetObject request carries no s3:prefix key (issue 13);
- both pipeline roles have s3:GetBucketVersioning, GetBucketAcl and GetBucketLocation on their
  artifact store, unconditionally (AWS's minimal CodePipeline service role);
- every role trust statement for a service in CONFUSED_DEPUTY_SERVICES carries
  aws:SourceAccount = the stack's account, and for CodeBuild and CodePipeline aws:SourceArn =
  exactly the ARN of a project or pipeline that runs with that role (Lambda execution roles
  are left plain: lambda.amazonaws.com is not held to those keys here).

One deployment for a whole forge (issue 13):
- no project in the templates: no ProjectKey/ProjectFullName/ExtraProjectsToml/ApprovalPhrase
  parameter, no PCB_PROJECTS, exactly one trusted and one untrusted pipeline and CodeBuild project;
- the registry: the three functions get the same PCB_REGISTRY_*, PCB_PAGURE_URL/GIT_URL (the
  PagureUrl/GitUrl parameters), PCB_PIPELINE/PCB_UNTRUSTED_PIPELINE (the shared pair) and
  PCB_PIPELINE_PREFIX (<NamePrefix>-); the registry bucket is its own (not the artifact
  bucket), versioned, SSE-S3, public access blocked, TLS only, retained on delete; on it each
  function may s3:GetObject exactly <bucket>/<PCB_REGISTRY_KEY> and s3:ListBucket the bucket,
  nothing else;
- by prefix, never by list: every pipeline and CodeBuild project is named <prefix>...; the
  report rules match project-name and pipeline with exactly [{"prefix": <prefix>}]; the work
  and report pipeline grants and report's codebuild:BatchGetBuilds name exactly <prefix>*;
- every pipeline is V2 and PARALLEL (SUPERSEDED would let one project's run supersede
  another's on the shared pipeline; QUEUED would serialise the forge) with the key override;
- work timing: PCB_QUEUE_URL is the build queue, 0 < PCB_RETRY_FIRST_SECONDS <=
  PCB_RETRY_MAX_SECONDS <= 43200, sqs:ChangeMessageVisibility on the queue; the SQS source's
  ScalingConfig.MaximumConcurrency is the MaximumConcurrency parameter (2..1000); both
  CodeBuild projects take ConcurrentBuildLimit, EnvironmentType, ComputeType and the image
  from parameters (the default image matches the architecture);
- the sweep: a schedule (SweepSchedule, default rate(15 minutes)) invokes the report function;
  report gets PCB_SWEEP_AFTER_SECONDS, the work function's PCB_BUCKET/PCB_KEY_PREFIX, ListBucket
  on that bucket, GetObject on <prefix>/*.started, *.settled, the sweep's cursor
  <prefix>/.sweep/cursor and the archives <prefix>/*.zip (the sweep reads an archive's
  metadata with HeadObject, which needs s3:GetObject) only, PutObject on *.settled and the
  cursor only;
- secret shards: one Secrets Manager secret, named <NamePrefix>-... (not ending in "-" and six
  characters); the three functions get PCB_SECRET_ID = that NAME (not the ARN: shard i is the
  secret named <it>-shard-i, created by `projects add`) and PCB_SECRET_SHARDS = the
  SecretShards parameter (default 1, 1..200), secretsmanager:GetSecretValue on exactly the
  secret and arn:...:secret:<name>-shard-*, and no other secretsmanager action; the SecretName
  output is the name and CliEnvironment exports both;
- one encryption: every bucket is SSE-S3 (AES256, what the bridge writes), no function has
  PCB_KMS_KEY_ID or a kms: grant;
- names: no name derives from the stack name; NamePrefix has a pattern and a maximum length
  such that every derived name, rendered with the longest prefix allowed, fits its service's
  length and characters (CodeBuild 2-255 [A-Za-z0-9][A-Za-z0-9-_]*, pipelines 100, event
  rules 64, roles 64, buckets 63, secrets 512); every name the stack gives starts with
  <NamePrefix>-, and the pattern refuses a "-" in NamePrefix, so that one stack's <prefix>-*
  (grants, event rules) never matches another stack's names (pagure-ci-* would match the
  pipelines of a stack whose prefix is pagure-ci-staging);
- alarms: every alarm (the dead-letter ones too) has AlarmActions = the AlarmTopicArn
  parameter if HasAlarmTopic (true exactly when AlarmTopicArn is not empty), else none,
  TreatMissingData notBreaching, actions enabled, and a description that points to
  docs/operations.md, which explains it by name; the alarms on the bridge's own metrics
  (embedded metric format, namespace PagureCiBridge, dimension FunctionName = the function's
  own name, i.e. a Ref of the function) exist exactly as BRIDGE_ALARMS says: Failures of work
  with Class terminal (Sum >= 1 in 5 minutes) and transient (>= 10 in 15 minutes), Failures of
  report with Class terminal (>= 1 in 5 minutes), RequestsRefused of accept with Class server
  (>= 1 in 5 minutes) and with Reason invalid_signature (>= 10 in 15 minutes); any alarm on
  that namespace watches a metric and dimension set the function it names writes (METRICS:
  CloudWatch keeps one metric per exact dimension set), and docs/operations.md explains every
  metric;
- parity: the SAM template and the CDK app have the same parameters (with the same defaults
  and constraints), outputs, function environment variable names, and alarms (names without
  CDK's hash, metrics, dimensions, thresholds, actions, descriptions).

Usage: check_templates.py sam TEMPLATE | check_templates.py cdk TEMPLATE
       check_templates.py parity SAM_TEMPLATE CDK_TEMPLATE
       check_templates.py mutants CDK_TEMPLATE [SAM_TEMPLATE] (CDK_TEMPLATE a synthesized CDK
       template: each broken copy in CDK_MUTANTS must be refused; so must each ALARM_MUTANTS
       copy of SAM_TEMPLATE, infra/sam/template.yaml by default, and parity must refuse an
       alarm description that drifted; scripts/check-infra breaks the rest of the SAM template
       with sed)
"""

import fnmatch
import json
import re
import sys

from cfnlint.decode import decode


# What each function may touch, by the role it plays (logical-id prefixes for CDK).
ALLOWED = {
    "accept": {"BuildQueue", "BridgeSecret", "RegistryBucket"},
    "work": {"ArtifactBucket", "BridgeSecret", "Pipeline", "BuildQueue", "RegistryBucket"},
    "report": {"BridgeSecret", "Pipeline", "ReportDeadLetterQueue", "ArtifactBucket", "RegistryBucket"},
}


def refs(value):
    """Logical ids an intrinsic-function expression mentions (pseudo parameters excluded)."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(inner, list):
                    found.update(refs(inner[1]))
            else:
                found.update(refs(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(refs(inner))
    return {r for r in found if not r.startswith("AWS::")}


def literal_star(value):
    if value == "*":
        return True
    if isinstance(value, list):
        return any(literal_star(v) for v in value)
    return False


def statements_of(document):
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def matches(reference, allowed, kind):
    """SAM names resources exactly; CDK adds a hash suffix to the logical id."""
    if kind == "sam":
        return reference in allowed
    return any(reference.startswith(a) for a in allowed)


def check_policies(role, statements, allowed, kind, errors, parameters=()):
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        resource = statement.get("Resource")
        if literal_star(resource):
            errors.append(f"{role}: {statement.get('Action')} on '*'")
            continue
        for reference in refs(resource) - set(parameters):
            # The function's own log group and queue source mappings are SAM/CDK's business.
            if not matches(reference, allowed, kind):
                errors.append(f"{role}: {statement.get('Action')} names {reference}, not one of its resources")


def functions(template, kind):
    """(role, function logical id, properties) for the three functions."""
    found = []
    for logical, resource in template["Resources"].items():
        if kind == "sam" and resource["Type"] == "AWS::Serverless::Function":
            binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            found.append((binary, logical, resource["Properties"]))
        elif kind == "cdk" and resource["Type"] == "AWS::Lambda::Function":
            for role in ALLOWED:
                if logical.lower().startswith(role):
                    found.append((role, logical, resource["Properties"]))
    return found


# Values the renderer gives pseudo parameters (their exact value does not matter, only that
# the same expression renders the same everywhere).
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": "",
}
BUILD_SERVICE = "codebuild.amazonaws.com"
SECRET_TYPES = {"SECRETS_MANAGER", "PARAMETER_STORE"}
# What the untrusted build role may do, and on what (see allowed_untrusted_statement).
UNTRUSTED_LOG_ACTIONS = {"logs:createlogstream", "logs:putlogevents", "logs:createloggroup"}
UNTRUSTED_S3_ACTIONS = {"s3:getobject", "s3:getobjectversion"}
UNTRUSTED_BUCKET_ACTIONS = {"s3:getbucketacl", "s3:getbucketlocation"}
# Paths BuildSpecPath must accept and refuse (its AllowedPattern is the deploy-time guard).
BUILDSPEC_PATHS_OK = ["buildspec.yml", "buildspec.yaml", "ci/buildspec.yml", "a_b/c-d/build.spec.yml"]
BUILDSPEC_PATHS_BAD = [
    "", "../buildspec.yml", "/buildspec.yml", "ci/../buildspec.yml", "./buildspec.yml", ".git/buildspec.yml",
    "ci/.git/buildspec.yml", ".GIT/x.yml", "ci//buildspec.yml", "ci\\buildspec.yml", "buildspec.yml\n",
    "buildspec.yml/", "buildspec.json", "build spec.yml", "ci/.hidden.yml", "version: 0.2\nphases: {}",
]

# Service principals whose role trust statements must name the stack's account (and, where
# the service has one, the assuming resource's ARN): the confused-deputy guard.
CONFUSED_DEPUTY_SERVICES = {
    "codebuild.amazonaws.com", "codepipeline.amazonaws.com", "events.amazonaws.com", "scheduler.amazonaws.com",
}
PIPELINE_BUCKET_ACTIONS = {"s3:getbucketversioning", "s3:getbucketacl", "s3:getbucketlocation"}



class Renderer:
    """Renders an intrinsic-function expression into a string: pseudo parameters as PSEUDO,
    parameters as their defaults (or `overrides`), resources as `<Logical>` and
    `<Logical.Attribute>`, conditions evaluated on those parameter values."""

    def __init__(self, template, overrides=None):
        self.template = template
        self.values = {
            name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()
        }
        self.values.update(overrides or {})

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.values:
            return self.values[name]
        return f"<{name}>"

    def condition(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (key, inner), = value.items()
            if key == "Condition":
                return self.condition(self.template["Conditions"][inner])
            if key == "Fn::Equals":
                return self.render(inner[0]) == self.render(inner[1])
            if key == "Fn::Not":
                return not self.condition(inner[0])
            if key == "Fn::And":
                return all(self.condition(c) for c in inner)
            if key == "Fn::Or":
                return any(self.condition(c) for c in inner)
        raise ValueError(f"cannot evaluate condition {value!r}")

    def render(self, value, local=None):
        local = local or {}
        if isinstance(value, (bool, int, float)):
            return json.dumps(value)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            (key, inner), = value.items()
            if key == "Ref":
                return self.ref(inner)
            if key == "Fn::GetAtt":
                target, attribute = inner if isinstance(inner, list) else str(inner).split(".", 1)
                return f"<{target}.{attribute}>"
            if key == "Fn::Join":
                separator, parts = inner
                return separator.join(self.render(p) for p in parts)
            if key == "Fn::If":
                name, yes, no = inner
                return self.render(yes if self.condition(self.template["Conditions"][name]) else no)
            if key == "Fn::Sub":
                text, variables = (inner[0], inner[1]) if isinstance(inner, list) else (inner, {})
                rendered = {k: self.render(v) for k, v in variables.items()}

                def one(match):
                    name = match.group(1)
                    if name.startswith("!"):
                        return "${" + name[1:] + "}"
                    if name in rendered:
                        return rendered[name]
                    if "." in name and name.split(".")[0] not in PSEUDO:
                        return f"<{name}>"
                    return self.ref(name)

                return re.sub(r"\$\{([^}]+)\}", one, text)
        raise ValueError(f"cannot render {value!r}")


def as_list(value):
    return value if isinstance(value, list) else [value]


def target_of(value):
    """The logical id a `Ref` or `Fn::GetAtt` names, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "Ref" and isinstance(inner, str):
            return inner
        if key == "Fn::GetAtt":
            return inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
    return None


def function_environment(template, kind, properties):
    variables = {}
    if kind == "sam":
        variables.update(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    variables.update(properties.get("Environment", {}).get("Variables", {}))
    return variables


def role_statements(template, role, errors):
    """Every statement that applies to the role: its inline policies, AWS::IAM::Policy and
    RolePolicy resources naming it, and managed policies (an ARN the template does not
    define cannot be read, so it is refused)."""
    resources = template["Resources"]
    properties = resources[role]["Properties"]
    found = []
    for policy in properties.get("Policies", []):
        found.extend(statements_of(policy["PolicyDocument"]))
    for arn in properties.get("ManagedPolicyArns", []):
        managed = target_of(arn)
        if managed not in resources or resources[managed]["Type"] != "AWS::IAM::ManagedPolicy":
            errors.append(f"{role}: managed policy {json.dumps(arn)} is not defined in the template (cannot be checked)")
        else:
            found.extend(statements_of(resources[managed]["Properties"]["PolicyDocument"]))
    for logical, resource in resources.items():
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            if role in {target_of(r) for r in props.get("Roles", [])}:
                found.extend(statements_of(props["PolicyDocument"]))
        elif kind == "AWS::IAM::RolePolicy" and target_of(props.get("RoleName")) == role:
            found.extend(statements_of(props["PolicyDocument"]))
    return found


def check_build_trust(role, template, errors):
    """The role can be assumed by CodeBuild and by nothing else."""
    render = Renderer(template).render
    document = template["Resources"][role]["Properties"].get("AssumeRolePolicyDocument", {})
    statements = statements_of(document)
    if not statements:
        errors.append(f"{role}: no trust policy")
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = (
            [render(s) for s in as_list(principal["Service"])]
            if isinstance(principal, dict) and set(principal) == {"Service"}
            else None
        )
        actions = [a.lower() for a in as_list(statement.get("Action", []))]
        if services != [BUILD_SERVICE] or actions != ["sts:assumerole"] or "NotPrincipal" in statement:
            errors.append(f"{role}: trust statement {json.dumps(statement)} is not codebuild.amazonaws.com alone")


def allowed_untrusted_statement(statement, log_group, bucket, render):
    """None when the statement is within the untrusted build role's allowance, else why not."""
    if any(k in statement for k in ("NotAction", "NotResource", "NotPrincipal")):
        return "uses NotAction/NotResource/NotPrincipal"
    actions = {str(a).lower() for a in as_list(statement.get("Action", []))}
    resources = [render(r) for r in as_list(statement.get("Resource", []))]
    if not actions or not resources:
        return "has no Action or no Resource"
    if any(r == "*" for r in resources):
        return "names the resource '*'"
    if actions <= UNTRUSTED_LOG_ACTIONS:
        # GetAtt LogGroup.Arn is the group's ARN with `:*`, its streams.
        if all(r == f"<{log_group}.Arn>" for r in resources):
            return None
        return f"logs actions on {resources}, not the untrusted log group {log_group}"
    if actions <= UNTRUSTED_S3_ACTIONS:
        prefixes = (f"<{bucket}.Arn>/", f"arn:aws:s3:::<{bucket}>/")
        if all(r.startswith(prefixes) for r in resources):
            return None
        return f"s3 reads on {resources}, not objects of the untrusted artifact bucket {bucket}"
    if actions <= UNTRUSTED_BUCKET_ACTIONS:
        # The bucket itself (its ACL and region, as AWS's minimal CodeBuild role has them), no object.
        if all(r in (f"<{bucket}.Arn>", f"arn:aws:s3:::<{bucket}>") for r in resources):
            return None
        return f"bucket reads on {resources}, not the untrusted artifact bucket {bucket} itself"
    return (f"allows {sorted(actions)}: only {sorted(UNTRUSTED_LOG_ACTIONS)} on its log group, "
            f"{sorted(UNTRUSTED_S3_ACTIONS)} on its artifact bucket's objects or {sorted(UNTRUSTED_BUCKET_ACTIONS)} on the bucket")


def pipelines_by_name(template, render):
    return {
        render(r["Properties"]["Name"]): logical
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::CodePipeline::Pipeline"
    }


def actions_of(pipeline, category):
    return [a for stage in pipeline["Properties"]["Stages"] for a in stage["Actions"]
            if a["ActionTypeId"]["Category"] == category]


def pipeline_of(template, value, render):
    """The logical id of the pipeline an environment value names (a Ref, or its name)."""
    resources = template["Resources"]
    target = target_of(value)
    if target in resources and resources[target]["Type"] == "AWS::CodePipeline::Pipeline":
        return target
    if value is None:
        return None
    return pipelines_by_name(template, render).get(render(value))


def check_buildspec_path(template, work_env, errors):
    """One parameter drives every project's Source.BuildSpec and the work function's
    PCB_CODEBUILD_BUILDSPEC; its pattern refuses unsafe paths; nothing else names a buildspec."""
    parameter = template.get("Parameters", {}).get("BuildSpecPath")
    if parameter is None:
        errors.append("no BuildSpecPath parameter")
        return
    pattern = parameter.get("AllowedPattern")
    if not pattern:
        errors.append("BuildSpecPath has no AllowedPattern")
    else:
        for path in BUILDSPEC_PATHS_OK + [parameter.get("Default", "")]:
            if not re.fullmatch(pattern, path):
                errors.append(f"BuildSpecPath's pattern refuses the safe path {path!r}")
        for path in BUILDSPEC_PATHS_BAD:
            if re.fullmatch(pattern, path):
                errors.append(f"BuildSpecPath's pattern accepts the unsafe path {path!r}")
    wanted = {"Ref": "BuildSpecPath"}
    if work_env.get("PCB_CODEBUILD_BUILDSPEC") != wanted:
        errors.append(f"the work function's PCB_CODEBUILD_BUILDSPEC is {work_env.get('PCB_CODEBUILD_BUILDSPEC')!r}, not the BuildSpecPath parameter")
    projects = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::CodeBuild::Project"}
    for logical, project in projects.items():
        if project["Properties"].get("Source", {}).get("BuildSpec") != wanted:
            errors.append(f"{logical}: Source.BuildSpec is {project['Properties'].get('Source', {}).get('BuildSpec')!r}, not the BuildSpecPath parameter")
    spelled = re.findall(r"[\w./-]*buildspec\.ya?ml", json.dumps(template["Resources"]), re.IGNORECASE)
    if spelled:
        errors.append(f"resources spell buildspec file names of their own: {sorted(set(spelled))}")


def bridge_pipeline_variables():
    """bridge_core::buildspec::PIPELINE_VARIABLES, as the work function starts runs with: read
    from the one Rust file of crates/bridge-core/src that defines it (the crates' files and
    folders get moved around; any crate's src if bridge-core has none)."""
    import glob
    import os
    crates = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates")
    pattern = r"pub const PIPELINE_VARIABLES: \[&str; \d+\] =\s*\[([^\]]*)\]"
    for tree in ("bridge-core", "*"):
        sources = sorted(glob.glob(os.path.join(crates, tree, "src", "**", "*.rs"), recursive=True))
        found = [(source, m) for source, m in ((s, re.search(pattern, open(s).read())) for s in sources) if m]
        if found:
            break
    if len(found) != 1:
        sys.exit(f"{len(found)} definitions of PIPELINE_VARIABLES under {crates} ({[f for f, _ in found]}), not one")
    return re.findall(r'"([A-Z_]+)"', found[0][1].group(1))


def check_pipeline_variables(label, pipeline, action, render, errors):
    wanted = bridge_pipeline_variables()
    declared = [v.get("Name") for v in pipeline["Properties"].get("Variables", [])]
    if sorted(declared) != sorted(wanted):
        errors.append(f"the {label} pipeline declares variables {declared}, the bridge starts it with {wanted}")
    passed = json.loads(render(action["Configuration"].get("EnvironmentVariables", "[]")))
    expected = {name: f"#{{variables.{name}}}" for name in wanted}
    expected["PAGURE_PIPELINE_EXECUTION_ID"] = "#{codepipeline.PipelineExecutionId}"
    got = {v.get("name"): v.get("value") for v in passed}
    if got != expected or len(passed) != len(expected):
        errors.append(f"the {label} pipeline's build action passes {sorted(got)}, not exactly the bridge's "
                      f"{sorted(expected)} (values the PR author chooses must not be pasted into its JSON text)")


def check_untrusted(template, kind, by_role, errors):
    resources = template["Resources"]
    renderer = Renderer(template)
    render = renderer.render
    work_env = function_environment(template, kind, by_role["work"][1])
    check_buildspec_path(template, work_env, errors)

    # PCB_PIPELINE and PCB_UNTRUSTED_PIPELINE name the shared pair.
    by_name = pipelines_by_name(template, render)
    found = {}
    for label, variable in (("trusted", "PCB_PIPELINE"), ("untrusted", "PCB_UNTRUSTED_PIPELINE")):
        found[label] = pipeline_of(template, work_env.get(variable), render)
        if found[label] is None:
            errors.append(f"{variable} is {work_env.get(variable)!r}, not a pipeline of the template ({sorted(by_name)})")
            return
    if found["trusted"] == found["untrusted"]:
        errors.append(f"PCB_PIPELINE and PCB_UNTRUSTED_PIPELINE are both {found['trusted']!r}")
        return
    by_name = {render(resources[found[label]]["Properties"]["Name"]): found[label] for label in found}
    trusted_name, untrusted_name = (render(resources[found[label]]["Properties"]["Name"]) for label in ("trusted", "untrusted"))
    trusted, untrusted = resources[by_name[trusted_name]], resources[by_name[untrusted_name]]
    side = {}
    for label, pipeline in (("trusted", trusted), ("untrusted", untrusted)):
        builds = actions_of(pipeline, "Build")
        sources = actions_of(pipeline, "Source")
        if len(builds) != 1 or len(sources) != 1:
            errors.append(f"the {label} pipeline has {len(sources)} source and {len(builds)} build actions, not one each")
            return
        source = sources[0]
        config = source["Configuration"]
        if source["Name"] != work_env.get("PCB_SOURCE_ACTION") or render(config["S3Bucket"]) != render(work_env["PCB_BUCKET"]) \
                or not render(config["S3ObjectKey"]).startswith(render(work_env["PCB_KEY_PREFIX"]) + "/") \
                or config.get("AllowOverrideForS3ObjectKey") is not True:
            errors.append(f"the {label} pipeline's source action is not the one the work function starts (action "
                          f"{work_env.get('PCB_SOURCE_ACTION')}, bucket PCB_BUCKET, key under PCB_KEY_PREFIX, key override allowed)")
        project = target_of(builds[0]["Configuration"]["ProjectName"])
        if resources.get(project, {}).get("Type") != "AWS::CodeBuild::Project":
            errors.append(f"the {label} pipeline's build action runs {project!r}, not a CodeBuild project of the template")
            return
        props = resources[project]["Properties"]
        check_pipeline_variables(label, pipeline, builds[0], render, errors)
        side[label] = {
            "pipeline": pipeline,
            "project": project,
            "build_role": target_of(props["ServiceRole"]),
            "pipeline_role": target_of(pipeline["Properties"]["RoleArn"]),
            "bucket": target_of(pipeline["Properties"]["ArtifactStore"]["Location"]),
            "log_group": target_of(props.get("LogsConfig", {}).get("CloudWatchLogs", {}).get("GroupName")),
            "action": builds[0],
        }
    for what in ("project", "build_role", "pipeline_role", "bucket", "log_group"):
        t, u = side["trusted"][what], side["untrusted"][what]
        if u is None or t == u:
            errors.append(f"the untrusted pipeline's {what.replace('_', ' ')} is {u!r}, not its own (the trusted one's is {t!r})")
    for label in ("trusted", "untrusted"):
        check_pipeline_bucket_grants(template, label, side[label], errors)
    u = side["untrusted"]
    if None in (u["build_role"], u["bucket"], u["log_group"]):
        return
    if trusted["Properties"].get("Variables") != untrusted["Properties"].get("Variables") or \
            side["trusted"]["action"]["Configuration"].get("EnvironmentVariables") != u["action"]["Configuration"].get("EnvironmentVariables"):
        errors.append("the untrusted pipeline's variables differ from the trusted one's (the report function finds requests through them)")

    # The untrusted project.
    project = resources[u["project"]]["Properties"]
    environment = project.get("Environment", {})
    if environment.get("PrivilegedMode", False) not in (False, "false"):
        errors.append(f"{u['project']}: PrivilegedMode is {environment.get('PrivilegedMode')!r}")
    for variable in environment.get("EnvironmentVariables", []):
        if str(variable.get("Type", "PLAINTEXT")) in SECRET_TYPES:
            errors.append(f"{u['project']}: environment variable {variable.get('Name')} is a {variable['Type']} secret")
    for variable in json.loads(render(u["action"]["Configuration"].get("EnvironmentVariables", "[]"))):
        if variable.get("type", "PLAINTEXT") != "PLAINTEXT":
            errors.append(f"the untrusted pipeline's build action passes {variable.get('name')} as {variable.get('type')}")
    for forbidden in ("VpcConfig", "FileSystemLocations", "SecondarySources", "SecondaryArtifacts"):
        if project.get(forbidden):
            errors.append(f"{u['project']}: has {forbidden}")
    if project.get("Cache", {}).get("Type", "NO_CACHE") not in ("NO_CACHE", "LOCAL"):
        errors.append(f"{u['project']}: has a {project['Cache']['Type']} cache (another bucket to grant)")
    if project.get("LogsConfig", {}).get("S3Logs", {}).get("Status", "DISABLED") != "DISABLED":
        errors.append(f"{u['project']}: writes logs to S3 (another bucket to grant)")
    if "EncryptionKey" in project and not render(project["EncryptionKey"]).endswith(":alias/aws/s3"):
        errors.append(f"{u['project']}: EncryptionKey {render(project['EncryptionKey'])} is a customer key (a KMS grant)")
    if u["action"].get("OutputArtifacts"):
        errors.append("the untrusted pipeline's build action has output artifacts (the build role would need to write)")

    # The untrusted build role: its trust, and every statement it gets.
    for label in ("trusted", "untrusted"):
        check_build_trust(side[label]["build_role"], template, errors)
    statements = role_statements(template, u["build_role"], errors)
    if not any(s.get("Effect") == "Allow" for s in statements):
        errors.append(f"{u['build_role']}: no statement (it could not write its logs)")
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        why = allowed_untrusted_statement(statement, u["log_group"], u["bucket"], render)
        if why:
            errors.append(f"untrusted build role {u['build_role']}: statement {json.dumps(statement)} {why}")

    # The untrusted artifact bucket: SSE-S3, public access blocked, versioned like the trusted
    # store, TLS only.
    bucket = resources[u["bucket"]]["Properties"]
    rules = bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    if [r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules] != ["AES256"]:
        errors.append(f"{u['bucket']}: not SSE-S3 (AES256) by default")
    blocks = bucket.get("PublicAccessBlockConfiguration", {})
    if not all(blocks.get(k) is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")):
        errors.append(f"{u['bucket']}: public access not fully blocked")
    trusted_bucket = resources[side["trusted"]["bucket"]]["Properties"]
    if bucket.get("VersioningConfiguration") != trusted_bucket.get("VersioningConfiguration"):
        errors.append(f"{u['bucket']}: versioning differs from the trusted artifact store's")
    tls = [
        s for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and target_of(r["Properties"]["Bucket"]) == u["bucket"]
        for s in statements_of(r["Properties"]["PolicyDocument"])
        if s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        and {render(x) for x in as_list(s.get("Resource"))} >= {f"<{u['bucket']}.Arn>", f"<{u['bucket']}.Arn>/*"}
    ]
    if not tls:
        errors.append(f"{u['bucket']}: no policy denying requests without TLS on the bucket and its objects")

    # Work and report may act on both pipelines.
    names = {"trusted": trusted_name, "untrusted": untrusted_name}
    for role, action in (("work", "codepipeline:StartPipelineExecution"), ("report", "codepipeline:GetPipelineExecution")):
        arns = [
            render(r) for s in function_statements(template, kind, by_role[role][1])
            if s.get("Effect") == "Allow" and action.lower() in {a.lower() for a in as_list(s.get("Action", []))}
            for r in as_list(s.get("Resource", []))
        ]
        for label, name in names.items():
            arn = f"arn:aws:codepipeline:us-east-1:123456789012:{name}"
            if not any(fnmatch.fnmatchcase(arn, pattern) for pattern in arns):
                errors.append(f"{role} may not {action} on the {label} pipeline {name} (grants: {arns})")
    return u


def granted(statement, action):
    """Whether an Allow statement's Action (wildcards included) covers `action`."""
    return statement.get("Effect") == "Allow" and "NotAction" not in statement and any(
        fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in as_list(statement.get("Action", [])))


def check_work_list_bucket(template, kind, by_role, errors):
    """The work function may ListBucket its own source bucket, unconditionally, and no other
    (but the registry's)."""
    render = Renderer(template).render
    work = by_role["work"][1]
    bucket = target_of(function_environment(template, kind, work).get("PCB_BUCKET"))
    arn = f"<{bucket}.Arn>"
    listing = [s for s in function_statements(template, kind, work) if granted(s, "s3:ListBucket")]
    if not any(arn in {render(r) for r in as_list(s.get("Resource", []))} and not s.get("Condition") for s in listing):
        errors.append(f"the work function may not s3:ListBucket its source bucket {bucket} without a Condition "
                      "(a missing key would read as 403, not 404)")
    # The registry bucket's own ListBucket is check_forge's business.
    registry = f"<{target_of(function_environment(template, kind, work).get('PCB_REGISTRY_BUCKET'))}.Arn>"
    for statement in listing:
        others = {render(r) for r in as_list(statement.get("Resource", []))} - {arn, registry}
        if others:
            errors.append(f"the work function may s3:ListBucket {sorted(others)}, not only its source bucket {bucket}")


def check_pipeline_bucket_grants(template, label, side, errors):
    """The pipeline role has AWS's minimal service-role bucket reads on its artifact store."""
    role, bucket = side["pipeline_role"], side["bucket"]
    if role not in template["Resources"] or bucket is None:
        return
    render = Renderer(template).render
    arn = f"<{bucket}.Arn>"
    statements = [s for s in role_statements(template, role, []) if not s.get("Condition")
                  and arn in {render(r) for r in as_list(s.get("Resource", []))}]
    missing = sorted(a for a in PIPELINE_BUCKET_ACTIONS if not any(granted(s, a) for s in statements))
    if missing:
        errors.append(f"the {label} pipeline role {role} lacks {missing} on its artifact store {bucket} "
                      "(AWS's minimal CodePipeline service role has them)")


def check_trust_conditions(template, errors):
    """Every trust statement for a CONFUSED_DEPUTY_SERVICES principal names the stack's account,
    and for CodeBuild/CodePipeline exactly the ARN of a project/pipeline that uses the role."""
    resources = template["Resources"]
    render = Renderer(template).render
    account = PSEUDO["AWS::AccountId"]
    prefix = f"arn:{PSEUDO['AWS::Partition']}:{{}}:{PSEUDO['AWS::Region']}:{account}:"
    for role, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        users = {
            "codebuild.amazonaws.com": {
                prefix.format("codebuild") + "project/" + render(r["Properties"]["Name"])
                for r in resources.values() if r["Type"] == "AWS::CodeBuild::Project"
                and target_of(r["Properties"].get("ServiceRole")) == role and "Name" in r["Properties"]},
            "codepipeline.amazonaws.com": {
                prefix.format("codepipeline") + render(r["Properties"]["Name"])
                for r in resources.values() if r["Type"] == "AWS::CodePipeline::Pipeline"
                and target_of(r["Properties"].get("RoleArn")) == role and "Name" in r["Properties"]},
        }
        for statement in statements_of(resource["Properties"].get("AssumeRolePolicyDocument", {})):
            principal = statement.get("Principal")
            if statement.get("Effect") != "Allow" or not isinstance(principal, dict):
                continue
            services = {render(s) for s in as_list(principal.get("Service", []))} & CONFUSED_DEPUTY_SERVICES
            if not services:
                continue
            condition = statement.get("Condition", {})
            exact = {**condition.get("StringEquals", {}), **condition.get("ArnEquals", {})}
            source_account = [render(v) for v in as_list(exact.get("aws:SourceAccount", []))]
            if source_account != [account]:
                errors.append(f"{role}: trust statement for {sorted(services)} has aws:SourceAccount {source_account}, "
                              "not exactly the stack's account (confused deputy)")
            for service in sorted(services & set(users)):
                source_arns = {render(v) for v in as_list(exact.get("aws:SourceArn", []))}
                if not source_arns or not source_arns <= users[service]:
                    errors.append(f"{role}: trust statement for {service} has aws:SourceArn {sorted(source_arns)}, "
                                  f"not exactly the ARN of what uses the role {sorted(users[service])} (confused deputy)")


def function_statements(template, kind, properties):
    if kind == "sam":
        return [s for p in properties.get("Policies", []) if isinstance(p, dict) for s in statements_of(p)]
    role = target_of(properties["Role"])
    return [
        s for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and role in {target_of(x) for x in r["Properties"].get("Roles", [])}
        for s in statements_of(r["Properties"]["PolicyDocument"])
    ]


def main(kind, path):
    template, problems = decode(path)
    if problems:
        sys.exit(f"{path}: cannot read: {problems}")
    resources = template["Resources"]
    errors = []
    found = functions(template, kind)
    roles = sorted(role for role, _, _ in found)
    if roles != ["accept", "report", "work"]:
        sys.exit(f"{path}: expected the accept, work and report functions, found {roles}")
    by_role = {role: (logical, props) for role, logical, props in found}

    queue = next(r for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and name.startswith("BuildQueue"))
    work_timeout = by_role["work"][1]["Timeout"]
    visibility = queue["Properties"]["VisibilityTimeout"]
    if visibility < 6 * work_timeout:
        errors.append(f"queue visibility timeout {visibility} s < 6 x work timeout {work_timeout} s")
    max_receive = queue["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    if max_receive < 5:
        errors.append(f"maxReceiveCount {max_receive} < 5")
    told = by_role["work"][1]["Environment"]["Variables"].get("PCB_MAX_RECEIVE_COUNT")
    if str(told) != str(max_receive):
        errors.append(f"work is told PCB_MAX_RECEIVE_COUNT={told}, the queue says {max_receive}")

    if kind == "sam":
        events = by_role["work"][1]["Events"]
        sqs = [e for e in events.values() if e["Type"] == "SQS"]
        if not sqs or "ReportBatchItemFailures" not in sqs[0]["Properties"].get("FunctionResponseTypes", []):
            errors.append("the work function's SQS source does not report batch item failures")
        if by_role["accept"][1].get("FunctionUrlConfig", {}).get("AuthType") != "NONE":
            errors.append("the accept function has no AuthType NONE function URL")
        for role, (logical, props) in by_role.items():
            statements = [s for p in props.get("Policies", []) if isinstance(p, dict) for s in statements_of(p)]
            if not statements:
                errors.append(f"{role}: no inline policy")
            check_policies(role, statements, ALLOWED[role], kind, errors, template.get("Parameters", {}))
    else:
        mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
        if not any("ReportBatchItemFailures" in m["Properties"].get("FunctionResponseTypes", []) for m in mappings):
            errors.append("the work function's SQS source does not report batch item failures")
        urls = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Url"]
        if not urls or urls[0]["Properties"].get("AuthType") != "NONE":
            errors.append("the accept function has no AuthType NONE function URL")
        for role, (logical, props) in by_role.items():
            role_ref = refs(props["Role"])
            policies = [
                r for r in resources.values()
                if r["Type"] == "AWS::IAM::Policy" and refs(r["Properties"].get("Roles", [])) & role_ref
            ]
            statements = [s for p in policies for s in statements_of(p["Properties"]["PolicyDocument"])]
            # CDK's own grants for the log group and the SQS source are not the function's to choose.
            statements = [
                s for s in statements
                if not any(str(a).startswith(("logs:", "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility",
                                              "sqs:GetQueue", "sqs:DeleteMessage", "kms:"))
                           for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
            ]
            if not statements:
                errors.append(f"{role}: no policy")
            check_policies(role, statements, ALLOWED[role], kind, errors, template.get("Parameters", {}))

    untrusted = check_untrusted(template, kind, by_role, errors)
    check_work_list_bucket(template, kind, by_role, errors)
    check_trust_conditions(template, errors)
    check_forge(template, kind, by_role, errors)
    check_alarms(template, kind, by_role, errors)

    if errors:
        sys.exit(f"{path}:\n  " + "\n  ".join(errors))
    print(f"{path}: visibility {visibility} s = {visibility / work_timeout:.0f} x work timeout, "
          f"maxReceiveCount {max_receive}, IAM of {', '.join(roles)} names only their own resources; "
          f"BuildSpecPath drives every project and the work function; untrusted build role "
          f"{untrusted['build_role']} may only write {untrusted['log_group']} and read {untrusted['bucket']}; "
          f"{len(alarms_of(template))} alarms notify AlarmTopicArn if set, {len(BRIDGE_ALARMS)} of them on the "
          f"bridge's {METRICS_NAMESPACE} metrics")



# Issue 13: one deployment for a whole forge.
PROJECT_PARAMETERS = {"ProjectKey", "ProjectFullName", "ExtraProjectsToml", "ApprovalPhrase"}
REGISTRY_ENV = ["PCB_REGISTRY_BUCKET", "PCB_REGISTRY_KEY", "PCB_REGISTRY_TTL_SECONDS", "PCB_PAGURE_URL", "PCB_GIT_URL",
                "PCB_PIPELINE", "PCB_UNTRUSTED_PIPELINE", "PCB_PIPELINE_PREFIX"]
# Name properties: (resource type, property) -> (maximum length, the service's pattern).
NAME_RULES = {
    ("AWS::CodeBuild::Project", "Name"): (255, r"[A-Za-z0-9][A-Za-z0-9\-_]{1,254}"),
    ("AWS::CodePipeline::Pipeline", "Name"): (100, r"[A-Za-z0-9.@\-_]+"),
    ("AWS::Events::Rule", "Name"): (64, r"[\.\-_A-Za-z0-9]+"),
    ("AWS::IAM::Role", "RoleName"): (64, r"[\w+=,.@-]+"),
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"): (128, r"[\w+=,.@-]+"),
    ("AWS::S3::Bucket", "BucketName"): (63, r"[a-z0-9][a-z0-9.-]*[a-z0-9]"),
    ("AWS::Lambda::Function", "FunctionName"): (64, r"[a-zA-Z0-9-_]+"),
    ("AWS::Serverless::Function", "FunctionName"): (64, r"[a-zA-Z0-9-_]+"),
    ("AWS::SQS::Queue", "QueueName"): (80, r"[A-Za-z0-9_-]+"),
    ("AWS::Logs::LogGroup", "LogGroupName"): (512, r"[\.\-_/#A-Za-z0-9]+"),
    # Less the longest shard suffix, -shard-199.
    ("AWS::SecretsManager::Secret", "Name"): (512 - len("-shard-199"), r"[A-Za-z0-9/_+=.@-]+"),
}
# SAM event sources that become event rules, and the property holding the rule's name.
SAM_RULE_EVENTS = {"EventBridgeRule": "RuleName", "CloudWatchEvent": "RuleName", "Schedule": "Name"}
NAME_PREFIXES_BAD = ["", "a", "a.b", "a_b", "-ab", "ab-", "a b", "1ab", "a/b"]
# Prefixes with a dash: stack `pagure-ci`'s pagure-ci-* would match stack `pagure-ci-staging`'s names.
NAME_PREFIXES_DASHED = ["ab--cd", "a-b", "ab-cd", "pagure-ci", "pagure-ci-staging"]
SECRET_SHARDS_MAX = 200
MAX_VISIBILITY_SECONDS = 43200


def bucket_arn_of(template, value, render):
    """'<Logical.Arn>' for a Ref or GetAtt of a bucket (SAM and CDK render the same)."""
    return f"<{target_of(value)}.Arn>"


def statement_resources(statement, render):
    return {render(r) for r in as_list(statement.get("Resource", []))}


def named_resources(template, kind, by_role):
    """(label, resource type, property, name expression) for every name the template gives."""
    found = []
    for logical, resource in template["Resources"].items():
        for (rtype, prop), _ in NAME_RULES.items():
            if resource["Type"] == rtype and prop in resource.get("Properties", {}):
                found.append((logical, rtype, prop, resource["Properties"][prop]))
    if kind == "sam":
        for _, logical, props in functions(template, kind):
            for event_id, event in props.get("Events", {}).items():
                prop = SAM_RULE_EVENTS.get(event["Type"])
                if prop and prop in event.get("Properties", {}):
                    found.append((f"{logical}.{event_id}", "AWS::Events::Rule", "Name", event["Properties"][prop]))
    return found


def check_names(template, kind, by_role, errors):
    """NamePrefix bounds every derived name; no name derives from the stack name."""
    parameter = template.get("Parameters", {}).get("NamePrefix")
    if parameter is None:
        errors.append("no NamePrefix parameter (the names would derive from the stack name, which the template cannot bound)")
        return
    pattern, longest = parameter.get("AllowedPattern"), parameter.get("MaxLength")
    if not pattern or longest is None:
        errors.append("NamePrefix has no AllowedPattern or no MaxLength")
        return
    longest = int(longest)
    for bad in NAME_PREFIXES_BAD:
        if re.fullmatch(pattern, bad) and (bad == "" or int(parameter.get("MinLength", 0)) <= len(bad)):
            errors.append(f"NamePrefix's pattern accepts {bad!r}, which some derived name refuses")
    for dashed in NAME_PREFIXES_DASHED:
        if re.fullmatch(pattern, dashed):
            shorter = dashed.rsplit("-", 1)[0]
            if not re.fullmatch(pattern, shorter):
                shorter = dashed.split("-")[0]
            errors.append(f"NamePrefix's pattern accepts {dashed!r}: a stack with the prefix {shorter!r} would grant "
                          f"and hear {shorter}-*, which matches this stack's {dashed}-trusted (no '-' in a prefix)")
    for value in (parameter.get("Default", ""), "a" * longest):
        if not re.fullmatch(pattern, value):
            errors.append(f"NamePrefix's pattern refuses {value!r}")
    render = Renderer(template, {"NamePrefix": "a" * longest}).render
    for label, rtype, prop, expression in named_resources(template, kind, by_role):
        if "AWS::StackName" in json.dumps(expression):
            errors.append(f"{label}: {prop} derives from the stack name, which no parameter bounds: {json.dumps(expression)}")
            continue
        name = render(expression)
        if not name.startswith("a" * longest + "-"):
            errors.append(f"{label}: {prop} {name!r} does not start with <NamePrefix>- (another stack's <prefix>-* could match it)")
        maximum, allowed = NAME_RULES[(rtype, prop)]
        if len(name) > maximum or not re.fullmatch(allowed, name):
            errors.append(f"{label}: {prop} {name!r} with the longest NamePrefix ({longest}) breaks {rtype}'s limit "
                          f"({maximum} characters of {allowed})")


def check_forge(template, kind, by_role, errors):
    resources = template["Resources"]
    parameters = template.get("Parameters", {})
    render = Renderer(template).render
    envs = {role: function_environment(template, kind, props) for role, (_, props) in by_role.items()}
    statements = {role: function_statements(template, kind, props) for role, (_, props) in by_role.items()}

    # No project in the templates.
    for name in sorted(PROJECT_PARAMETERS & set(parameters)):
        errors.append(f"parameter {name} names a project (projects live in the registry)")
    for role, env in envs.items():
        if "PCB_PROJECTS" in env:
            errors.append(f"{role}: PCB_PROJECTS is set (projects live in the registry)")
    for rtype in ("AWS::CodePipeline::Pipeline", "AWS::CodeBuild::Project"):
        count = sum(1 for r in resources.values() if r["Type"] == rtype)
        if count != 2:
            errors.append(f"{count} {rtype} resources, not one shared trusted and one untrusted")

    # The registry contract, the same for the three functions.
    for role, env in envs.items():
        missing = [v for v in REGISTRY_ENV if v not in env]
        if missing:
            errors.append(f"{role}: no {missing}")
            return
        if {v: env[v] for v in REGISTRY_ENV} != {v: envs["accept"][v] for v in REGISTRY_ENV}:
            errors.append(f"{role}: registry environment differs from accept's")
    env = envs["accept"]
    for variable, name in (("PCB_PAGURE_URL", "PagureUrl"), ("PCB_GIT_URL", "GitUrl")):
        if env[variable] != {"Ref": name} or name not in parameters:
            errors.append(f"{variable} is {env[variable]!r}, not the {name} parameter (the forge default)")
    for variable in ("PCB_REGISTRY_TTL_SECONDS",):
        if not re.fullmatch(r"[1-9][0-9]*", render(env[variable])):
            errors.append(f"{variable} is {env[variable]!r}, not a positive whole number")
    key = render(env["PCB_REGISTRY_KEY"])
    registry = target_of(env["PCB_REGISTRY_BUCKET"])
    artifact = target_of(envs["work"].get("PCB_BUCKET"))
    if resources.get(registry, {}).get("Type") != "AWS::S3::Bucket" or registry == artifact:
        errors.append(f"PCB_REGISTRY_BUCKET is {env['PCB_REGISTRY_BUCKET']!r}, not a bucket of its own")
        return
    bucket = resources[registry]
    props = bucket["Properties"]
    if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
        errors.append(f"{registry}: the registry bucket is not versioned")
    blocks = props.get("PublicAccessBlockConfiguration", {})
    if not all(blocks.get(k) is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")):
        errors.append(f"{registry}: public access not fully blocked")
    if bucket.get("DeletionPolicy") != "Retain" or bucket.get("UpdateReplacePolicy") != "Retain":
        errors.append(f"{registry}: the registry bucket is not retained when the stack is deleted or replaced")
    tls = [s for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy" and target_of(r["Properties"]["Bucket"]) == registry
           for s in statements_of(r["Properties"]["PolicyDocument"])
           if s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)]
    if not tls:
        errors.append(f"{registry}: no policy denying requests without TLS")
    arn = f"<{registry}.Arn>"
    for role, found in statements.items():
        reads = False
        for statement in found:
            on = statement_resources(statement, render)
            if not any(r == arn or r.startswith(arn + "/") for r in on):
                continue
            actions = {str(a).lower() for a in as_list(statement.get("Action", []))}
            if statement.get("Effect") != "Allow":
                continue
            if actions == {"s3:getobject"} and on == {f"{arn}/{key}"}:
                reads = True
            elif actions == {"s3:listbucket"} and on == {arn} and not statement.get("Condition"):
                pass
            else:
                errors.append(f"{role}: {sorted(actions)} on {sorted(on)}: on the registry bucket only s3:GetObject of "
                              f"{key} and s3:ListBucket of the bucket are allowed")
        if not reads:
            errors.append(f"{role}: may not s3:GetObject the registry {arn}/{key}")

    # By prefix, never by list.
    prefix = render(env["PCB_PIPELINE_PREFIX"])
    name_prefix = parameters.get("NamePrefix", {}).get("Default")
    if prefix != f"{name_prefix}-":
        errors.append(f"PCB_PIPELINE_PREFIX renders {prefix!r}, not '<NamePrefix>-' ({name_prefix!r})")
    for label in ("PCB_PIPELINE", "PCB_UNTRUSTED_PIPELINE"):
        if pipeline_of(template, env[label], render) is None:
            errors.append(f"{label} is {env[label]!r}, not a pipeline of the template")
    for logical, r in resources.items():
        if r["Type"] in ("AWS::CodePipeline::Pipeline", "AWS::CodeBuild::Project") and not render(r["Properties"]["Name"]).startswith(prefix):
            errors.append(f"{logical}: name {render(r['Properties']['Name'])!r} does not start with {prefix!r}")
    if kind == "sam":
        patterns = [e["Properties"]["Pattern"] for e in by_role["report"][1].get("Events", {}).values()
                    if e["Type"] in ("EventBridgeRule", "CloudWatchEvent")]
        schedules = [e["Properties"].get("Schedule") for e in by_role["report"][1].get("Events", {}).values()
                     if e["Type"] in ("Schedule", "ScheduleV2")]
    else:
        report_arn = f"<{by_role['report'][0]}.Arn>"
        rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"
                 and any(render(t["Arn"]) == report_arn for t in r["Properties"].get("Targets", []))]
        patterns = [r["EventPattern"] for r in rules if "EventPattern" in r]
        schedules = [r["ScheduleExpression"] for r in rules if "ScheduleExpression" in r]
    wanted = [{"prefix": prefix}]
    for field, source in (("project-name", "aws.codebuild"), ("pipeline", "aws.codepipeline")):
        heard = [p for p in patterns if source in p.get("source", [])]
        if len(heard) != 1:
            errors.append(f"{len(heard)} report rules for {source}, not one")
            continue
        values = heard[0].get("detail", {}).get(field)
        got = [{k: render(v) for k, v in x.items()} if isinstance(x, dict) and set(x) == {"prefix"} else render(x)
               for x in (values or [])]
        if got != wanted:
            errors.append(f"the report rule for {source} matches {field} {got}, not exactly {wanted} (by prefix, never a list)")
    grants = {("work", "codepipeline:StartPipelineExecution"): f"arn:aws:codepipeline:us-east-1:123456789012:{prefix}*",
              ("report", "codepipeline:GetPipelineExecution"): f"arn:aws:codepipeline:us-east-1:123456789012:{prefix}*",
              ("report", "codepipeline:ListActionExecutions"): f"arn:aws:codepipeline:us-east-1:123456789012:{prefix}*",
              ("report", "codebuild:BatchGetBuilds"): f"arn:aws:codebuild:us-east-1:123456789012:project/{prefix}*"}
    for (role, action), arn_pattern in grants.items():
        on = set().union(*[statement_resources(s, render) for s in statements[role] if granted(s, action)] or [set()])
        if on != {arn_pattern}:
            errors.append(f"{role} may {action} on {sorted(on)}, not exactly {arn_pattern} (the stack's prefix)")

    # Pipelines: V2, parallel, the key override (SUPERSEDED: one project's run would cancel another's).
    for logical, r in resources.items():
        if r["Type"] != "AWS::CodePipeline::Pipeline":
            continue
        props = r["Properties"]
        if props.get("PipelineType") != "V2" or props.get("ExecutionMode") != "PARALLEL":
            errors.append(f"{logical}: {props.get('PipelineType')} {props.get('ExecutionMode')}, not V2 PARALLEL "
                          "(on a shared pipeline SUPERSEDED would let one project's run supersede another's)")
        for action in actions_of(r, "Source"):
            if action["Configuration"].get("AllowOverrideForS3ObjectKey") is not True:
                errors.append(f"{logical}: the source action does not allow the per-run S3 key override")

    # Work timing.
    work_env = envs["work"]
    queue = next((k for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and k.startswith("BuildQueue")), None)
    if target_of(work_env.get("PCB_QUEUE_URL")) != queue:
        errors.append(f"the work function's PCB_QUEUE_URL is {work_env.get('PCB_QUEUE_URL')!r}, not the build queue {queue}")
    try:
        first, most = int(render(work_env["PCB_RETRY_FIRST_SECONDS"])), int(render(work_env["PCB_RETRY_MAX_SECONDS"]))
        if not 0 < first <= most <= MAX_VISIBILITY_SECONDS:
            errors.append(f"retry delays {first} s .. {most} s: not 0 < first <= max <= {MAX_VISIBILITY_SECONDS}")
    except (KeyError, ValueError) as e:
        errors.append(f"the work function has no whole PCB_RETRY_FIRST_SECONDS/PCB_RETRY_MAX_SECONDS ({e})")
    if not any(granted(s, "sqs:ChangeMessageVisibility") and f"<{queue}.Arn>" in statement_resources(s, render)
               for s in statements["work"]):
        errors.append(f"the work function may not sqs:ChangeMessageVisibility on {queue}")
    if kind == "sam":
        sources = [e["Properties"] for e in by_role["work"][1].get("Events", {}).values() if e["Type"] == "SQS"]
    else:
        sources = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    for source in sources:
        concurrency = source.get("ScalingConfig", {}).get("MaximumConcurrency")
        name = target_of(concurrency)
        limits = parameters.get(name, {})
        if name is None or not 2 <= int(limits.get("MinValue", 0)) or not int(limits.get("MaxValue", 10**6)) <= 1000:
            errors.append(f"the work function's SQS source has MaximumConcurrency {concurrency!r}, not a parameter bounded 2..1000")

    # Both CodeBuild projects: environment, image, size and limit from parameters.
    for logical, r in resources.items():
        if r["Type"] != "AWS::CodeBuild::Project":
            continue
        environment = r["Properties"].get("Environment", {})
        if environment.get("Type") != {"Ref": "CodeBuildEnvironmentType"} or environment.get("ComputeType") != {"Ref": "CodeBuildComputeType"}:
            errors.append(f"{logical}: environment type and compute type are not the CodeBuildEnvironmentType/CodeBuildComputeType parameters")
        if "ConcurrentBuildLimit" not in refs(r["Properties"].get("ConcurrentBuildLimit")):
            errors.append(f"{logical}: ConcurrentBuildLimit is not the ConcurrentBuildLimit parameter")
        for env_type, image, arch in (("ARM_CONTAINER", "", "aarch64"), ("LINUX_CONTAINER", "", "x86_64"),
                                      ("LINUX_CONTAINER", "example/image:1", "example/image:1")):
            rendered = Renderer(template, {"CodeBuildEnvironmentType": env_type, "CodeBuildImage": image}).render(environment.get("Image"))
            if arch not in rendered or (image == "" and rendered.count("aarch64") + rendered.count("x86_64") != 1):
                errors.append(f"{logical}: with {env_type} and CodeBuildImage {image!r} the image is {rendered!r}, not {arch}")
    for name in ("CodeBuildEnvironmentType", "CodeBuildComputeType", "CodeBuildImage", "ConcurrentBuildLimit"):
        if name not in parameters:
            errors.append(f"no {name} parameter")
    if str(parameters.get("ConcurrentBuildLimit", {}).get("Default")) != "0":
        errors.append("ConcurrentBuildLimit's default is not 0 (no limit: a limit above a new account's quota fails the deploy)")

    # The sweep.
    if len(schedules) != 1 or target_of(schedules[0]) != "SweepSchedule" \
            or parameters.get("SweepSchedule", {}).get("Default") != "rate(15 minutes)":
        errors.append(f"the report function's schedules are {schedules!r}, not the SweepSchedule parameter (default rate(15 minutes))")
    report_env = envs["report"]
    if report_env.get("PCB_SWEEP_AFTER_SECONDS") != {"Ref": "SweepAfterSeconds"} or \
            str(parameters.get("SweepAfterSeconds", {}).get("Default")) != "3600":
        errors.append("the report function's PCB_SWEEP_AFTER_SECONDS is not the SweepAfterSeconds parameter (default 3600)")
    for variable in ("PCB_BUCKET", "PCB_KEY_PREFIX"):
        if report_env.get(variable) != work_env.get(variable):
            errors.append(f"the report function's {variable} is {report_env.get(variable)!r}, not the work function's")
    artifact_arn = f"<{artifact}.Arn>"
    marker = f"{artifact_arn}/{render(work_env.get('PCB_KEY_PREFIX', ''))}/*"
    cursor = f"{artifact_arn}/{render(work_env.get('PCB_KEY_PREFIX', ''))}/.sweep/cursor"  # bridge_core::sweep::cursor_key
    allowed_marker_grants = {"s3:listbucket": {artifact_arn},
                             # *.zip: the sweep reads an archive's metadata (HeadObject needs s3:GetObject).
                             "s3:getobject": {marker + ".started", marker + ".settled", cursor, marker + ".zip"},
                             "s3:putobject": {marker + ".settled", cursor}}
    seen = {a: set() for a in allowed_marker_grants}
    for statement in statements["report"]:
        on = {r for r in statement_resources(statement, render) if r == artifact_arn or r.startswith(artifact_arn + "/")}
        if not on or statement.get("Effect") != "Allow":
            continue
        for action in (str(a).lower() for a in as_list(statement.get("Action", []))):
            if action not in allowed_marker_grants or not on <= allowed_marker_grants[action] or \
                    (action == "s3:listbucket" and statement.get("Condition")):
                errors.append(f"report: {action} on {sorted(on)}: on the artifact bucket only ListBucket, GetObject of "
                              "*.started/*.settled markers, the cursor and *.zip archives (their metadata), PutObject of "
                              "*.settled markers and the cursor are allowed")
            else:
                seen[action] |= on
    if seen != allowed_marker_grants:
        errors.append(f"report's sweep grants on the artifact bucket are {seen}, not {allowed_marker_grants}")

    check_secret_shards(template, envs, statements, render, errors)

    # One encryption: SSE-S3 everywhere, as the bridge writes.
    for logical, r in resources.items():
        if r["Type"] == "AWS::S3::Bucket":
            rules = r["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            if [x.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for x in rules] != ["AES256"]:
                errors.append(f"{logical}: not SSE-S3 (AES256) by default, unlike what the bridge writes")
            if logical != registry and r.get("DeletionPolicy", "Delete") != "Delete":
                errors.append(f"{logical}: DeletionPolicy {r.get('DeletionPolicy')} (the artifact buckets go with the stack; scripts/teardown empties them)")
    for role, env in envs.items():
        if "PCB_KMS_KEY_ID" in env:
            errors.append(f"{role}: PCB_KMS_KEY_ID is set (the bridge would write SSE-KMS into SSE-S3 buckets)")
        for statement in statements[role]:
            if any(str(a).lower().startswith("kms:") for a in as_list(statement.get("Action", []))):
                errors.append(f"{role}: a kms: grant ({statement.get('Action')}), though nothing is KMS-encrypted by the bridge")

    check_names(template, kind, by_role, errors)


def check_secret_shards(template, envs, statements, render, errors):
    """One named secret (shard 0); PCB_SECRET_ID is its name, PCB_SECRET_SHARDS the parameter;
    the functions read exactly it and <name>-shard-*; the outputs give both."""
    resources, parameters = template["Resources"], template.get("Parameters", {})
    shards = parameters.get("SecretShards")
    if shards is None or shards.get("Type") != "Number" or str(shards.get("Default")) != "1" \
            or str(shards.get("MinValue")) != "1" or not 1 <= int(shards.get("MaxValue", 10**6)) <= SECRET_SHARDS_MAX:
        errors.append(f"SecretShards is {shards!r}, not a Number parameter with Default 1, MinValue 1, MaxValue <= {SECRET_SHARDS_MAX}")
    secrets = [k for k, r in resources.items() if r["Type"] == "AWS::SecretsManager::Secret"]
    if len(secrets) != 1:
        errors.append(f"{len(secrets)} secrets ({secrets}), not the one base secret (the shards are not the stack's)")
        return
    secret = secrets[0]
    expression = resources[secret]["Properties"].get("Name")
    if expression is None:
        errors.append(f"{secret}: no Name (the functions find the shards by the base secret's name, <name>-shard-i)")
        return
    name = render(expression)
    prefix = render({"Ref": "NamePrefix"}) if "NamePrefix" in parameters else None
    if prefix is None or not name.startswith(prefix + "-"):
        errors.append(f"{secret}: Name {name!r} does not derive from NamePrefix (<NamePrefix>-...)")
    if re.search(r"-[^-]{6}$", name):
        errors.append(f"{secret}: Name {name!r} ends in '-' and six characters (AWS: lookups by partial ARN would be confused)")
    shard_arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-shard-*"
    for role, env in envs.items():
        if render(env.get("PCB_SECRET_ID", "")) != name or target_of(env.get("PCB_SECRET_ID")) == secret:
            errors.append(f"{role}: PCB_SECRET_ID is {env.get('PCB_SECRET_ID')!r}, not the base secret's name {name!r} "
                          "(an ARN has a random suffix: the shards' names cannot derive from it)")
        if env.get("PCB_SECRET_SHARDS") != {"Ref": "SecretShards"}:
            errors.append(f"{role}: PCB_SECRET_SHARDS is {env.get('PCB_SECRET_SHARDS')!r}, not the SecretShards parameter")
        reads = set()
        for statement in statements[role]:
            actions = {str(a).lower() for a in as_list(statement.get("Action", []))}
            on = statement_resources(statement, render)
            if statement.get("Effect") != "Allow" or not any(a.startswith("secretsmanager:") or a == "*" for a in actions):
                continue
            if actions != {"secretsmanager:getsecretvalue"} or statement.get("Condition"):
                errors.append(f"{role}: {sorted(actions)} on {sorted(on)}: only secretsmanager:GetSecretValue, unconditioned")
            reads |= on
        wanted = {f"<{secret}>", shard_arn}
        if reads != wanted:
            errors.append(f"{role}: secretsmanager:GetSecretValue on {sorted(reads)}, not exactly the base secret and its "
                          f"shards {sorted(wanted)}")
    outputs = template.get("Outputs", {})
    if render(outputs.get("SecretName", {}).get("Value", "")) != name:
        errors.append(f"the SecretName output is not the base secret's name {name!r}")
    line = render(outputs.get("CliEnvironment", {}).get("Value", "")).split()
    for wanted in (f"PCB_SECRET_ID={name}", f"PCB_SECRET_SHARDS={render({'Ref': 'SecretShards'})}"):
        if wanted not in line:
            errors.append(f"the CliEnvironment output does not export {wanted}")


# The bridge's own metrics (embedded metric format, issue "alarms on the EMF metrics"): the
# namespace, and for each function the metrics it writes with every dimension set it writes
# them with, besides FunctionName (always there: the function's own name,
# AWS_LAMBDA_FUNCTION_NAME). CloudWatch keeps one metric per exact dimension set, so an alarm
# on a set the bridge never writes never sees a value.
METRICS_NAMESPACE = "PagureCiBridge"
METRICS = {
    "accept": {"RequestsAccepted": [()], "RequestsRefused": [(), ("Reason",), ("Class",)]},
    "work": {"BuildsStarted": [()], "Failures": [("Class",)], "FetchDuration": [()], "ArchiveDuration": [()],
             "UploadDuration": [()]},
    "report": {"FlagsPosted": [()], "Failures": [("Class",)]},
}
# The values a Class dimension takes (Reason: the stable error code, snake_case).
METRIC_CLASSES = {"RequestsRefused": {"client", "server"}, "Failures": {"transient", "terminal"}}
# The alarms each template must have on them: alarm -> (function, metric, dimensions besides
# FunctionName, period in seconds, threshold); each alarms on Sum >= threshold over one period.
BRIDGE_ALARMS = {
    "WorkTerminalFailureAlarm": ("work", "Failures", {"Class": "terminal"}, 300, 1),
    "WorkTransientFailureAlarm": ("work", "Failures", {"Class": "transient"}, 900, 10),
    "ReportTerminalFailureAlarm": ("report", "Failures", {"Class": "terminal"}, 300, 1),
    "AcceptUnavailableAlarm": ("accept", "RequestsRefused", {"Class": "server"}, 300, 1),
    "AcceptInvalidSignatureAlarm": ("accept", "RequestsRefused", {"Reason": "invalid_signature"}, 900, 10),
}
# Every alarm of the stack (the dead-letter ones too) notifies AlarmTopicArn if it is set.
ALARM_TOPIC = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
OPERATIONS_DOC = "docs/operations.md"


def unhashed(logical, kind):
    """A CDK logical id without its hash suffix (SAM's are left as they are)."""
    return re.sub(r"[0-9A-F]{8}$", "", logical) if kind == "cdk" else logical


def alarms_of(template):
    return {k: r.get("Properties", {}) for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_dimensions(properties, errors, label):
    """An alarm's Dimensions as a dict (a name given twice is an error)."""
    found = {}
    for dimension in as_list(properties.get("Dimensions", [])):
        name = dimension.get("Name") if isinstance(dimension, dict) else None
        if name in found:
            errors.append(f"{label}: dimension {name} given twice")
        found[name] = dimension.get("Value") if isinstance(dimension, dict) else None
    return found


def operations_doc():
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", OPERATIONS_DOC)
    try:
        return open(path).read()
    except OSError:
        return None


def check_alarms(template, kind, by_role, errors):
    """Every alarm notifies AlarmTopicArn if it is set, is not breached by missing data and
    points to docs/operations.md, which explains it; BRIDGE_ALARMS exist exactly as specified;
    every alarm on the bridge's namespace watches a metric and dimension set the bridge writes,
    of the function it names."""
    alarms = alarms_of(template)
    parameters = template.get("Parameters", {})
    doc = operations_doc()
    if doc is None:
        errors.append(f"no {OPERATIONS_DOC} (the alarms' descriptions point to it)")
    if "AlarmTopicArn" not in parameters or str(parameters["AlarmTopicArn"].get("Default")) != "":
        errors.append("no AlarmTopicArn parameter defaulting to '' (no topic)")
    else:
        try:
            for value, wanted in (("", False), ("arn:aws:sns:us-east-1:123456789012:alarms", True)):
                renderer = Renderer(template, {"AlarmTopicArn": value})
                if renderer.condition(template.get("Conditions", {}).get("HasAlarmTopic")) != wanted:
                    errors.append(f"the HasAlarmTopic condition is not {wanted} when AlarmTopicArn is {value!r}")
        except (ValueError, KeyError, TypeError) as e:
            errors.append(f"the HasAlarmTopic condition cannot be evaluated ({e})")
    for logical_id, props in alarms.items():
        if props.get("AlarmActions") != ALARM_TOPIC:
            errors.append(f"{logical_id}: AlarmActions {json.dumps(props.get('AlarmActions'))}, not {json.dumps(ALARM_TOPIC)} "
                          "(the topic when AlarmTopicArn is set, none otherwise)")
        for other in ("OKActions", "InsufficientDataActions"):
            if other in props and props[other] != ALARM_TOPIC:
                errors.append(f"{logical_id}: {other} {json.dumps(props[other])}, not the alarm topic's wiring")
        if str(props.get("ActionsEnabled", True)).lower() == "false":
            errors.append(f"{logical_id}: ActionsEnabled is false (it would never notify)")
        if props.get("TreatMissingData") != "notBreaching":
            errors.append(f"{logical_id}: TreatMissingData {props.get('TreatMissingData')!r}, not 'notBreaching' "
                          "(a quiet forge is not an alarm)")
        description = props.get("AlarmDescription")
        if not isinstance(description, str) or OPERATIONS_DOC not in description:
            errors.append(f"{logical_id}: the description {description!r} does not point to {OPERATIONS_DOC}")
        if doc is not None and f"`{unhashed(logical_id, kind)}`" not in doc:
            errors.append(f"{logical_id}: {OPERATIONS_DOC} does not explain `{unhashed(logical_id, kind)}`")

    functions_by_logical = {logical_id: role for role, (logical_id, _) in by_role.items()}
    for logical_id, props in alarms.items():
        if props.get("Namespace") != METRICS_NAMESPACE:
            continue
        label = f"{logical_id} ({props.get('MetricName')})"
        if "Metrics" in props:
            errors.append(f"{label}: metric math on the bridge's metrics (check_templates.py cannot follow it)")
        dimensions = alarm_dimensions(props, errors, label)
        function = dimensions.get("FunctionName")
        role = functions_by_logical.get(target_of(function)) if isinstance(function, dict) and set(function) == {"Ref"} else None
        if role is None:
            errors.append(f"{label}: FunctionName {json.dumps(function)} is not a Ref of one of the functions "
                          f"{sorted(functions_by_logical)} (the bridge writes its own function name)")
            continue
        others = tuple(sorted(k for k in dimensions if k != "FunctionName"))
        written = METRICS[role].get(props.get("MetricName"))
        if written is None:
            errors.append(f"{label}: the {role} function writes no metric {props.get('MetricName')!r} "
                          f"(it writes {sorted(METRICS[role])})")
        elif others not in written:
            errors.append(f"{label}: the {role} function writes {props.get('MetricName')} with FunctionName and "
                          f"{[list(w) for w in written]}, never with {list(others)} (the alarm would never see a value)")
        if "Class" in dimensions and dimensions["Class"] not in METRIC_CLASSES.get(props.get("MetricName"), set()):
            errors.append(f"{label}: Class {dimensions['Class']!r} is not one of "
                          f"{sorted(METRIC_CLASSES.get(props.get('MetricName'), set()))}")
        if "Reason" in dimensions and not (isinstance(dimensions["Reason"], str) and re.fullmatch(r"[a-z][a-z_]*", dimensions["Reason"])):
            errors.append(f"{label}: Reason {dimensions['Reason']!r} is not an error code")

    for name, (role, metric, extra, period, threshold) in BRIDGE_ALARMS.items():
        found = [k for k in alarms if unhashed(k, kind) == name]
        if len(found) != 1:
            errors.append(f"{len(found)} alarms {name} ({found}), not one: {metric} of the {role} function {extra}, "
                          f"Sum >= {threshold} in {period // 60} minutes")
            continue
        props = alarms[found[0]]
        label = found[0]
        wanted = {"Namespace": METRICS_NAMESPACE, "MetricName": metric, "Statistic": "Sum",
                  "ComparisonOperator": "GreaterThanOrEqualToThreshold"}
        for key, value in wanted.items():
            if props.get(key) != value:
                errors.append(f"{label}: {key} {props.get(key)!r}, not {value!r}")
        dimensions = alarm_dimensions(props, [], label)
        expected = {"FunctionName": {"Ref": by_role[role][0]}, **extra}
        if dimensions != expected:
            errors.append(f"{label}: dimensions {json.dumps(dimensions)}, not exactly {json.dumps(expected)} "
                          f"(the {role} function's own name, as the bridge writes it)")
        for key in ("ExtendedStatistic", "Metrics", "ThresholdMetricId"):
            if key in props:
                errors.append(f"{label}: has {key}")
        if props.get("Unit", "Count") != "Count":
            errors.append(f"{label}: Unit {props.get('Unit')!r} (the bridge writes {metric} as Count)")
        try:
            numbers = {"Period": int(props.get("Period")), "EvaluationPeriods": int(props.get("EvaluationPeriods")),
                       "DatapointsToAlarm": int(props.get("DatapointsToAlarm", 1)), "Threshold": float(props.get("Threshold"))}
        except (TypeError, ValueError) as e:
            errors.append(f"{label}: Period, EvaluationPeriods, DatapointsToAlarm or Threshold is not a number ({e})")
            continue
        if numbers != {"Period": period, "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": threshold}:
            errors.append(f"{label}: {numbers}, not Sum >= {threshold} over one period of {period} s")
    # In JSON log format Lambda treats a metric line (it has no `level`) as INFO: a function
    # logging at WARN or above would drop its metrics, and every alarm above would stay OK, blind.
    for role, logical_id, props in functions(template, kind):
        level = (props.get("LoggingConfig") or {}).get("ApplicationLogLevel", "INFO")
        if level not in ("TRACE", "DEBUG", "INFO"):
            errors.append(f"{logical_id}: ApplicationLogLevel {level!r} drops the metric lines the alarms watch "
                          "(TRACE, DEBUG or INFO only)")
    if doc is not None:
        for role, metrics in METRICS.items():
            for metric in metrics:
                if f"`{metric}`" not in doc:
                    errors.append(f"{OPERATIONS_DOC} does not explain the {role} function's metric `{metric}`")


def alarm_specs(template, kind):
    """Each alarm by its name (without CDK's hash), its properties with the resources they name unhashed."""
    def norm(value):
        if isinstance(value, dict):
            if set(value) == {"Ref"} and isinstance(value["Ref"], str):
                return {"Ref": unhashed(value["Ref"], kind)}
            if set(value) == {"Fn::GetAtt"}:
                target, attribute = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else str(value["Fn::GetAtt"]).split(".", 1)
                return {"Fn::GetAtt": [unhashed(target, kind), attribute]}
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):
            return float(value)
        return str(value)
    specs = {}
    for logical_id, props in alarms_of(template).items():
        spec = {k: norm(v) for k, v in props.items() if k != "Dimensions"}
        spec["Dimensions"] = {str(d.get("Name")): norm(d.get("Value")) for d in as_list(props.get("Dimensions", []))}
        specs[unhashed(logical_id, kind)] = spec
    return specs


def parity(sam_path, cdk_path):
    """The SAM template and the CDK app offer the same parameters, outputs, function environments
    and alarms (the same names, metrics, thresholds, actions and descriptions)."""
    sam, cdk = decode(sam_path)[0], decode(cdk_path)[0]
    errors = []
    keys = ("Type", "Default", "AllowedPattern", "AllowedValues", "MinValue", "MaxValue", "MinLength", "MaxLength")
    norm = lambda p: {k: [str(v) for v in p[k]] if isinstance(p.get(k), list) else str(p[k]) for k in keys if k in p}
    sam_parameters = sam.get("Parameters", {})
    cdk_parameters = {k: v for k, v in cdk.get("Parameters", {}).items() if k != "BootstrapVersion"}
    for name in sorted(set(sam_parameters) | set(cdk_parameters)):
        if name not in sam_parameters or name not in cdk_parameters:
            errors.append(f"parameter {name} only in {'SAM' if name in sam_parameters else 'CDK'}")
        elif norm(sam_parameters[name]) != norm(cdk_parameters[name]):
            errors.append(f"parameter {name}: SAM {norm(sam_parameters[name])} != CDK {norm(cdk_parameters[name])}")
    if set(sam.get("Outputs", {})) != set(cdk.get("Outputs", {})):
        errors.append(f"outputs differ: SAM only {sorted(set(sam['Outputs']) - set(cdk['Outputs']))}, "
                      f"CDK only {sorted(set(cdk['Outputs']) - set(sam['Outputs']))}")
    envs = {}
    for label, template, kind in (("SAM", sam, "sam"), ("CDK", cdk, "cdk")):
        envs[label] = {role: set(function_environment(template, kind, props)) for role, _, props in functions(template, kind)}
    for role in sorted(envs["SAM"]):
        if envs["SAM"][role] != envs["CDK"].get(role):
            errors.append(f"{role}: environment SAM only {sorted(envs['SAM'][role] - envs['CDK'].get(role, set()))}, "
                          f"CDK only {sorted(envs['CDK'].get(role, set()) - envs['SAM'][role])}")
    alarms = {"SAM": alarm_specs(sam, "sam"), "CDK": alarm_specs(cdk, "cdk")}
    for name in sorted(set(alarms["SAM"]) | set(alarms["CDK"])):
        if name not in alarms["SAM"] or name not in alarms["CDK"]:
            errors.append(f"alarm {name} only in {'SAM' if name in alarms['SAM'] else 'CDK'}")
            continue
        for key in sorted(set(alarms["SAM"][name]) | set(alarms["CDK"][name])):
            got = (alarms["SAM"][name].get(key), alarms["CDK"][name].get(key))
            if got[0] != got[1]:
                errors.append(f"alarm {name}: {key} SAM {json.dumps(got[0])} != CDK {json.dumps(got[1])}")
    if errors:
        sys.exit(f"{sam_path} vs {cdk_path}:\n  " + "\n  ".join(errors))
    print(f"parity: {len(sam_parameters)} parameters, {len(sam['Outputs'])} outputs, the three functions' "
          f"environment names and {len(alarms['SAM'])} alarms are the same in SAM and CDK")


def logical(template, prefix, kind):
    """The one CDK logical id `prefix` + hash of the given type."""
    found = [k for k, r in template["Resources"].items()
             if r["Type"] == kind and re.fullmatch(re.escape(prefix) + r"([0-9A-F]{8})?", k)]
    if len(found) != 1:
        raise KeyError(f"{prefix} ({kind}): {found}")
    return found[0]


def _policy(t, role):
    return t["Resources"][logical(t, f"{role}DefaultPolicy", "AWS::IAM::Policy")]["Properties"]["PolicyDocument"]["Statement"]


def _trust(t, role):
    return t["Resources"][logical(t, role, "AWS::IAM::Role")]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]


def _untrusted_project(t):
    return t["Resources"][logical(t, "UntrustedBuildProject", "AWS::CodeBuild::Project")]["Properties"]


def _work_env(t):
    return t["Resources"][logical(t, "WorkFunction", "AWS::Lambda::Function")]["Properties"]["Environment"]["Variables"]


def _envs(t):
    return [_fn(t, f)["Environment"]["Variables"] for f in ("AcceptFunction", "WorkFunction", "ReportFunction")]


def _fn(t, name):
    return t["Resources"][logical(t, name, "AWS::Lambda::Function")]["Properties"]


def _resource(t, name, kind):
    return t["Resources"][logical(t, name, kind)]


def _statements_on(t, role, action):
    return [s for s in _policy(t, role) if action in as_list(s["Action"])]


def _report_rule(t, name):
    return _resource(t, name, "AWS::Events::Rule")["Properties"]


CDK_MUTANTS = {
    "the untrusted build role reading the bridge's secret": lambda t: _policy(t, "UntrustedBuildRole").append(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": {"Ref": logical(t, "BridgeSecret", "AWS::SecretsManager::Secret")}}),
    "the untrusted build role on '*'": lambda t: _policy(t, "UntrustedBuildRole")[-1].update(Resource="*"),
    "the untrusted build role reading the trusted stage bucket": lambda t: _policy(t, "UntrustedBuildRole")[-1].update(
        Resource={"Fn::Join": ["", [{"Fn::GetAtt": [logical(t, "StageArtifactBucket", "AWS::S3::Bucket"), "Arn"]}, "/*"]]}),
    "an extra policy attached to the untrusted build role": lambda t: t["Resources"].update(Extra={
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {"Roles": [{"Ref": logical(t, "UntrustedBuildRole", "AWS::IAM::Role")}], "PolicyDocument": {
            "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:us-east-1:1:parameter/x"}]}}}),
    "the untrusted build role assumable by the account": lambda t: t["Resources"][logical(t, "UntrustedBuildRole", "AWS::IAM::Role")][
        "Properties"]["AssumeRolePolicyDocument"]["Statement"][0].update(Principal={"AWS": "arn:aws:iam::123456789012:root"}),
    "a privileged untrusted project": lambda t: _untrusted_project(t)["Environment"].update(PrivilegedMode=True),
    "a secret variable in the untrusted project": lambda t: _untrusted_project(t)["Environment"].update(
        EnvironmentVariables=[{"Name": "TOKEN", "Type": "PARAMETER_STORE", "Value": "/token"}]),
    "the untrusted project on the trusted role": lambda t: _untrusted_project(t).update(
        ServiceRole={"Fn::GetAtt": [logical(t, "BuildRole", "AWS::IAM::Role"), "Arn"]}),
    "a hard-coded buildspec.yml": lambda t: _untrusted_project(t)["Source"].update(BuildSpec="buildspec.yml"),
    "the work function told another buildspec path": lambda t: _work_env(t).update(PCB_CODEBUILD_BUILDSPEC="ci/buildspec.yml"),
    "PCB_UNTRUSTED_PIPELINE naming the trusted pipeline": lambda t: [
        e.update(PCB_UNTRUSTED_PIPELINE=e["PCB_PIPELINE"]) for e in _envs(t)],
    "the branch name passed to both builds again": lambda t: [
        (r["Properties"]["Variables"].append({"Name": "PAGURE_BRANCH", "DefaultValue": "manual"}),
         a["Configuration"].update(EnvironmentVariables=json.dumps(
             json.loads(a["Configuration"]["EnvironmentVariables"])
             + [{"name": "PAGURE_BRANCH", "value": "#{variables.PAGURE_BRANCH}", "type": "PLAINTEXT"}])))
        for r in t["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"
        for a in actions_of(r, "Build")],
    "the report rule deaf to the untrusted project": lambda t: t["Resources"][logical(t, "BuildStates", "AWS::Events::Rule")][
        "Properties"]["EventPattern"]["detail"]["project-name"].pop(),
    # Issue 13 section 2.
    "the work role's ListBucket conditioned on s3:prefix again": lambda t: [
        s.update(Condition={"StringLike": {"s3:prefix": "sources/*"}})
        for s in _policy(t, "WorkFunctionRole") if s["Action"] == "s3:ListBucket"],
    "the trusted pipeline role without bucket reads on its artifact store": lambda t: _policy(t, "PipelineRole").__setitem__(
        slice(None), [s for s in _policy(t, "PipelineRole") if "s3:GetBucketAcl" not in as_list(s["Action"])]),
    "the untrusted pipeline role without GetBucketVersioning on its artifact store": lambda t: [
        s["Action"].remove("s3:GetBucketVersioning")
        for s in _policy(t, "UntrustedPipelineRole") if "s3:GetBucketAcl" in as_list(s["Action"])],
    "the trusted build role trusting CodeBuild of any account": lambda t: _trust(t, "BuildRole")["Condition"][
        "StringEquals"].pop("aws:SourceAccount"),
    "the untrusted pipeline role without aws:SourceArn": lambda t: _trust(t, "UntrustedPipelineRole")["Condition"][
        "StringEquals"].pop("aws:SourceArn"),
    "the untrusted build role trusting the trusted project": lambda t: _trust(t, "UntrustedBuildRole")["Condition"][
        "StringEquals"].update({"aws:SourceArn": _trust(t, "BuildRole")["Condition"]["StringEquals"]["aws:SourceArn"]}),
    # Issue 13: one deployment for a whole forge.
    "a project parameter again": lambda t: t["Parameters"].update(ProjectKey={"Type": "String", "Default": "demo"}),
    "PCB_PROJECTS again": lambda t: [e.update(PCB_PROJECTS="[demo]\npipeline = \"x\"") for e in _envs(t)],
    "a per-project pipeline": lambda t: t["Resources"].update(
        DemoPipeline=json.loads(json.dumps(_resource(t, "Pipeline", "AWS::CodePipeline::Pipeline")))),
    "the registry in the artifact bucket": lambda t: [
        e.update(PCB_REGISTRY_BUCKET={"Ref": logical(t, "ArtifactBucket", "AWS::S3::Bucket")}) for e in _envs(t)],
    "a registry bucket deleted with the stack": lambda t: _resource(t, "RegistryBucket", "AWS::S3::Bucket").update(
        DeletionPolicy="Delete"),
    "an unversioned registry bucket": lambda t: _resource(t, "RegistryBucket", "AWS::S3::Bucket")["Properties"].pop(
        "VersioningConfiguration"),
    "the functions reading every object of the registry bucket": lambda t: [
        s["Resource"]["Fn::Join"][1].__setitem__(1, "/*") for s in _statements_on(t, "ReportFunctionRole", "s3:GetObject")
        if "RegistryBucket" in json.dumps(s["Resource"])],
    "accept writing the registry": lambda t: _policy(t, "AcceptFunctionRole").append(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Join": ["", [
            {"Fn::GetAtt": [logical(t, "RegistryBucket", "AWS::S3::Bucket"), "Arn"]}, "/registry.json"]]}}),
    "PCB_PAGURE_URL hard-coded": lambda t: [e.update(PCB_PAGURE_URL="https://pagure.io/") for e in _envs(t)],
    "a report rule matching a list of pipelines": lambda t: _report_rule(t, "PipelineStates")["EventPattern"]["detail"].update(
        pipeline=[{"Ref": logical(t, "Pipeline", "AWS::CodePipeline::Pipeline")}]),
    "report reading the builds of every project": lambda t: [
        s.update(Resource="arn:aws:codebuild:us-east-1:123456789012:project/x") for s in _statements_on(t, "ReportFunctionRole", "codebuild:BatchGetBuilds")],
    "a SUPERSEDED shared pipeline": lambda t: _resource(t, "Pipeline", "AWS::CodePipeline::Pipeline")["Properties"].update(
        ExecutionMode="SUPERSEDED"),
    "the work function without PCB_QUEUE_URL": lambda t: _work_env(t).pop("PCB_QUEUE_URL"),
    "a longest retry shorter than the first": lambda t: _work_env(t).update(PCB_RETRY_MAX_SECONDS="10"),
    "the work function unable to ChangeMessageVisibility": lambda t: [
        s.__setitem__("Action", [a for a in as_list(s["Action"]) if a != "sqs:ChangeMessageVisibility"])
        for s in _policy(t, "WorkFunctionRole") if "sqs:ChangeMessageVisibility" in as_list(s["Action"])],
    "no MaximumConcurrency on the SQS source": lambda t: [
        r["Properties"].pop("ScalingConfig") for r in t["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"],
    "a fixed ConcurrentBuildLimit": lambda t: _untrusted_project(t).update(ConcurrentBuildLimit=10),
    "the x86 image whatever the environment type": lambda t: _untrusted_project(t)["Environment"].update(
        Image="aws/codebuild/amazonlinux-x86_64-standard:5.0"),
    "no sweep schedule": lambda t: t["Resources"].pop(logical(t, "Sweep", "AWS::Events::Rule")),
    "report reading source archives": lambda t: [
        s.update(Resource={"Fn::Join": ["", [{"Fn::GetAtt": [logical(t, "ArtifactBucket", "AWS::S3::Bucket"), "Arn"]}, "/sources/*"]]})
        for s in _statements_on(t, "ReportFunctionRole", "s3:GetObject") if "ArtifactBucket" in json.dumps(s["Resource"])],
    "report writing .started markers": lambda t: [
        r["Fn::Join"][1].__setitem__(1, "/sources/*.started")
        for s in _statements_on(t, "ReportFunctionRole", "s3:PutObject") for r in as_list(s["Resource"])
        if r["Fn::Join"][1][1] == "/sources/*.settled"],
    "an SSE-KMS artifact bucket": lambda t: _resource(t, "ArtifactBucket", "AWS::S3::Bucket")["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"].update(SSEAlgorithm="aws:kms"),
    "PCB_KMS_KEY_ID set": lambda t: _work_env(t).update(PCB_KMS_KEY_ID="alias/aws/s3"),
    "a NamePrefix of up to 60 characters": lambda t: t["Parameters"]["NamePrefix"].update(MaxLength=60),
    "a NamePrefix allowing dots": lambda t: t["Parameters"]["NamePrefix"].update(AllowedPattern="^[A-Za-z][A-Za-z0-9.]{1,39}$"),
    "a NamePrefix allowing dashes again": lambda t: t["Parameters"]["NamePrefix"].update(
        AllowedPattern="^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$"),
    "an event rule named without the prefix's dash": lambda t: _report_rule(t, "Sweep").update(
        Name={"Fn::Join": ["", [{"Ref": "NamePrefix"}, "sweep"]]}),
    "report unable to read the archives' metadata": lambda t: [
        s.__setitem__("Resource", [r for r in as_list(s["Resource"]) if "*.zip" not in json.dumps(r)])
        for s in _statements_on(t, "ReportFunctionRole", "s3:GetObject")],
    "PCB_SECRET_ID the secret's ARN": lambda t: [
        e.update(PCB_SECRET_ID={"Ref": logical(t, "BridgeSecret", "AWS::SecretsManager::Secret")}) for e in _envs(t)],
    "an unnamed secret": lambda t: _resource(t, "BridgeSecret", "AWS::SecretsManager::Secret")["Properties"].pop("Name"),
    "accept without PCB_SECRET_SHARDS": lambda t: _envs(t)[0].pop("PCB_SECRET_SHARDS"),
    "work unable to read the shards": lambda t: [
        s.__setitem__("Resource", as_list(s["Resource"])[0]) for s in _statements_on(t, "WorkFunctionRole", "secretsmanager:GetSecretValue")],
    "report reading every secret": lambda t: [
        s.__setitem__("Resource", [as_list(s["Resource"])[0], "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"])
        for s in _statements_on(t, "ReportFunctionRole", "secretsmanager:GetSecretValue")],
    "work writing the secret": lambda t: [
        s.__setitem__("Action", ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"])
        for s in _statements_on(t, "WorkFunctionRole", "secretsmanager:GetSecretValue")],
    "SecretShards down to 0": lambda t: t["Parameters"]["SecretShards"].update(MinValue=0),
    "CliEnvironment without PCB_SECRET_SHARDS": lambda t: t["Outputs"]["CliEnvironment"]["Value"]["Fn::Join"][1].__setitem__(
        slice(None), json.loads(json.dumps(t["Outputs"]["CliEnvironment"]["Value"]["Fn::Join"][1]).replace("PCB_SECRET_SHARDS=", "PCB_X="))),
    "the SecretName output the ARN": lambda t: t["Outputs"]["SecretName"].update(
        Value={"Ref": logical(t, "BridgeSecret", "AWS::SecretsManager::Secret")}),
    "a pipeline named after the stack": lambda t: _resource(t, "Pipeline", "AWS::CodePipeline::Pipeline")["Properties"].update(
        Name={"Fn::Join": ["", [{"Ref": "AWS::StackName"}, "-trusted"]]}),
}


def _alarm(t, name):
    return _resource(t, name, "AWS::CloudWatch::Alarm")["Properties"]


def _function_ref(t, name):
    """A Ref of the function `name` (CDK's AWS::Lambda::Function, or SAM's own type)."""
    for kind in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
        try:
            return {"Ref": logical(t, name, kind)}
        except KeyError:
            pass
    raise KeyError(name)


def _dimension(t, alarm, name):
    return next(d for d in _alarm(t, alarm)["Dimensions"] if d["Name"] == name)


def _extra_alarm(t):
    """A copy of ReportTerminalFailureAlarm on BuildsStarted, which the report function never writes."""
    alarm = json.loads(json.dumps(_resource(t, "ReportTerminalFailureAlarm", "AWS::CloudWatch::Alarm")))
    alarm["Properties"]["MetricName"] = "BuildsStarted"
    t["Resources"]["ReportTerminalFailureAlarm2"] = alarm


# Broken alarms, refused in the SAM template and in the synthesized CDK template alike.
ALARM_MUTANTS = {
    **{f"no {name}": (lambda name: lambda t: t["Resources"].pop(logical(t, name, "AWS::CloudWatch::Alarm")))(name)
       for name in BRIDGE_ALARMS},
    "the work terminal-failure alarm in the AWS/Lambda namespace": lambda t: _alarm(t, "WorkTerminalFailureAlarm").update(
        Namespace="AWS/Lambda"),
    "the report failure alarm on FlagsPosted": lambda t: _alarm(t, "ReportTerminalFailureAlarm").update(MetricName="FlagsPosted"),
    "the work transient-failure alarm on a misspelt metric": lambda t: _alarm(t, "WorkTransientFailureAlarm").update(
        MetricName="Failure"),
    "the report failure alarm watching the work function": lambda t: _dimension(t, "ReportTerminalFailureAlarm", "FunctionName").update(
        Value=_function_ref(t, "WorkFunction")),
    "the accept unavailable alarm on the function's ARN": lambda t: _dimension(t, "AcceptUnavailableAlarm", "FunctionName").update(
        Value={"Fn::GetAtt": [_function_ref(t, "AcceptFunction")["Ref"], "Arn"]}),
    "the accept unavailable alarm without its Class dimension (every refusal)": lambda t: _alarm(t, "AcceptUnavailableAlarm").update(
        Dimensions=[d for d in _alarm(t, "AcceptUnavailableAlarm")["Dimensions"] if d["Name"] != "Class"]),
    "the invalid-signature alarm on invalid_token": lambda t: _dimension(t, "AcceptInvalidSignatureAlarm", "Reason").update(
        Value="invalid_token"),
    "the invalid-signature alarm on a dimension set never written (Reason and Class)": lambda t: _alarm(
        t, "AcceptInvalidSignatureAlarm")["Dimensions"].append({"Name": "Class", "Value": "client"}),
    "the work transient-failure alarm watching terminal failures": lambda t: _dimension(t, "WorkTransientFailureAlarm", "Class").update(
        Value="terminal"),
    "the work terminal-failure alarm on a Class never written": lambda t: _dimension(t, "WorkTerminalFailureAlarm", "Class").update(
        Value="error"),
    "the work terminal-failure alarm at a threshold of 5": lambda t: _alarm(t, "WorkTerminalFailureAlarm").update(Threshold=5),
    "the work transient-failure alarm over 5 minutes": lambda t: _alarm(t, "WorkTransientFailureAlarm").update(Period=300),
    "the accept unavailable alarm on the Average": lambda t: _alarm(t, "AcceptUnavailableAlarm").update(Statistic="Average"),
    "the accept unavailable alarm on GreaterThanThreshold": lambda t: _alarm(t, "AcceptUnavailableAlarm").update(
        ComparisonOperator="GreaterThanThreshold"),
    "the work transient-failure alarm over 3 periods": lambda t: _alarm(t, "WorkTransientFailureAlarm").update(EvaluationPeriods=3),
    "the report failure alarm breaching on missing data": lambda t: _alarm(t, "ReportTerminalFailureAlarm").update(
        TreatMissingData="breaching"),
    "the invalid-signature alarm notifying the topic unconditionally": lambda t: _alarm(t, "AcceptInvalidSignatureAlarm").update(
        AlarmActions=[{"Ref": "AlarmTopicArn"}]),
    "the work terminal-failure alarm without AlarmActions": lambda t: _alarm(t, "WorkTerminalFailureAlarm").pop("AlarmActions"),
    "the build dead-letter alarm without AlarmActions": lambda t: _alarm(t, "BuildDeadLetterAlarm").pop("AlarmActions"),
    "HasAlarmTopic true with no AlarmTopicArn": lambda t: t["Conditions"].update(
        HasAlarmTopic={"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, "none"]}]}),
    "an alarm description not pointing to docs/operations.md": lambda t: _alarm(t, "ReportTerminalFailureAlarm").update(
        AlarmDescription=_alarm(t, "ReportTerminalFailureAlarm")["AlarmDescription"].replace("docs/operations.md", "the logs")),
    "the accept unavailable alarm with its actions disabled": lambda t: _alarm(t, "AcceptUnavailableAlarm").update(ActionsEnabled=False),
    "the work terminal-failure alarm in Seconds": lambda t: _alarm(t, "WorkTerminalFailureAlarm").update(Unit="Seconds"),
    "an alarm on a metric the report function does not write": _extra_alarm,
    "the work function logging at WARN (its metric lines dropped)": lambda t: t["Resources"][
        _function_ref(t, "WorkFunction")["Ref"]]["Properties"].setdefault(
        "LoggingConfig", {}).update(ApplicationLogLevel="WARN"),
}
CDK_MUTANTS.update(ALARM_MUTANTS)


def refuse_all(kind, path, table, base=None):
    """Each copy of the template at `path` broken by a mutation of `table` must be refused by
    `check_templates.py KIND`; the unbroken copy, written the same way, must pass."""
    import copy
    import os
    import subprocess
    import tempfile

    base = base if base is not None else decode(path)[0]
    with tempfile.TemporaryDirectory() as folder:
        broken = os.path.join(folder, "broken.json")
        for what, mutate in [(None, None), *table.items()]:
            template = copy.deepcopy(base)
            if mutate is not None:
                mutate(template)
                if template == base:
                    sys.exit(f"the mutation '{what}' changed nothing")
            with open(broken, "w") as f:
                json.dump(template, f)
            run = subprocess.run([sys.executable, __file__, kind, broken], capture_output=True, text=True)
            if what is None:
                if run.returncode != 0:
                    sys.exit(f"check_templates.py refused the unbroken {kind.upper()} template {path} once rewritten:\n{run.stderr}")
                continue
            if run.returncode == 0:
                sys.exit(f"check_templates.py accepted a {kind.upper()} template with {what}")
            if "Traceback" in run.stderr:
                sys.exit(f"check_templates.py crashed on a {kind.upper()} template with {what}:\n{run.stderr}")
            print(f"refused, as it should{'' if kind == 'cdk' else ' (SAM)'}: {what} "
                  f"({run.stderr.strip().splitlines()[-1].strip()[:160]})")
    return len(table)


def mutants(path, sam_path=None):
    """Every CDK_MUTANTS copy of a synthesized CDK template must be refused; so must every
    ALARM_MUTANTS copy of the SAM template (by default infra/sam/template.yaml beside this
    script; scripts/check-infra breaks the rest of it with sed), and parity must refuse a SAM
    alarm that drifted from the CDK one."""
    import os
    import subprocess
    import tempfile

    count = refuse_all("cdk", path, CDK_MUTANTS, json.load(open(path)))
    if sam_path is None:
        sam_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sam", "template.yaml")
    count += refuse_all("sam", sam_path, ALARM_MUTANTS)
    sam = decode(sam_path)[0]
    _alarm(sam, "WorkTransientFailureAlarm")["AlarmDescription"] += " (drifted)"
    with tempfile.TemporaryDirectory() as folder:
        drift = os.path.join(folder, "drift.json")
        with open(drift, "w") as f:
            json.dump(sam, f)
        run = subprocess.run([sys.executable, __file__, "parity", drift, path], capture_output=True, text=True)
    if run.returncode == 0 or "Traceback" in run.stderr:
        sys.exit(f"check_templates.py parity accepted (or crashed on) a SAM alarm description the CDK app does not have:\n{run.stderr}")
    print(f"refused, as it should (parity): an alarm description that drifted ({run.stderr.strip().splitlines()[-1].strip()[:160]})")
    print(f"mutants: {count} broken templates and 1 drift refused ({len(CDK_MUTANTS)} CDK, {len(ALARM_MUTANTS)} SAM)")

if __name__ == "__main__":
    if sys.argv[1:2] == ["parity"]:
        arguments = (4,)
    elif sys.argv[1:2] == ["mutants"]:
        arguments = (3, 4)
    else:
        arguments = (3,)
    if len(sys.argv) not in arguments or sys.argv[1] not in ("sam", "cdk", "mutants", "parity"):
        sys.exit(__doc__)
    if sys.argv[1] == "mutants":
        mutants(*sys.argv[2:])
    elif sys.argv[1] == "parity":
        parity(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])

