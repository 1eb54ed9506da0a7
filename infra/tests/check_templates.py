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
- the first project's `untrusted_pipeline` (PCB_PROJECTS) names a pipeline of the template,
  other than its `pipeline`, reading the same source bucket and key scheme through the action
  the work function overrides; its CodeBuild project, build role, pipeline role, artifact
  bucket and log group are all distinct from the trusted pipeline's; every statement of its
  build role (inline, attached, managed) allows only logs:CreateLogStream/PutLogEvents (and
  CreateLogGroup) on its own log group and s3:GetObject/GetObjectVersion on objects of its
  own artifact bucket; the project is not privileged, has no VPC, no secret variables (in the
  project or in the pipeline's action), no cache or file system, no customer KMS key; its
  artifact bucket is SSE-S3, versioned like the others, public access blocked, TLS only;
- both pipelines declare exactly the bridge's PIPELINE_VARIABLES (read from
  crates/core/src/buildspec.rs) and their build actions pass exactly those, as
  `#{variables.NAME}`, plus PAGURE_PIPELINE_EXECUTION_ID: no branch name or other value the
  PR author chooses is pasted into the action's JSON text;
- every CodeBuild role trusts codebuild.amazonaws.com alone;
- the report rules feed the report function both projects' and both pipelines' events, and
  the work and report functions' pipeline grants cover both pipelines;
- the work function may s3:ListBucket its source bucket (PCB_BUCKET) without any Condition,
  and no other bucket: S3 answers a GetObject of a missing key with 404 only to a caller that
  may ListBucket, and a GetObject request carries no s3:prefix key (issue 13);
- both pipeline roles have s3:GetBucketVersioning, GetBucketAcl and GetBucketLocation on their
  artifact store, unconditionally (AWS's minimal CodePipeline service role);
- every role trust statement for a service in CONFUSED_DEPUTY_SERVICES carries
  aws:SourceAccount = the stack's account, and for CodeBuild and CodePipeline aws:SourceArn =
  exactly the ARN of a project or pipeline that runs with that role (Lambda execution roles
  are left plain: lambda.amazonaws.com is not held to those keys here).

Usage: check_templates.py sam TEMPLATE | check_templates.py cdk TEMPLATE [APPROVAL_PHRASE]
       (APPROVAL_PHRASE: the first project's approval_phrase the CDK app was synthesized
       with; without it, none may be set)
       check_templates.py mutants TEMPLATE (a synthesized CDK template: each broken copy in
       CDK_MUTANTS must be refused; scripts/check-infra breaks the SAM template with sed)
"""

import fnmatch
import json
import re
import sys
import tomllib

from cfnlint.decode import decode


# What each function may touch, by the role it plays (logical-id prefixes for CDK).
ALLOWED = {
    "accept": {"BuildQueue", "BridgeSecret"},
    "work": {"ArtifactBucket", "BridgeSecret", "Pipeline"},
    "report": {"BridgeSecret", "Pipeline", "ReportDeadLetterQueue"},
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


def check_policies(role, statements, allowed, kind, errors):
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        resource = statement.get("Resource")
        if literal_star(resource):
            errors.append(f"{role}: {statement.get('Action')} on '*'")
            continue
        for reference in refs(resource):
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

APPROVAL_PHRASES_OK = ["", "/ok-to-test", "@ci-bot ok to test", "+1"]
APPROVAL_PHRASES_BAD = ['ok" x = "1', "a\\b", "ok\nx = 1", " /ok", "/ok ", "\t", "x" * 65]


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
    """bridge_core::buildspec::PIPELINE_VARIABLES, as the work function starts runs with."""
    import os
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "core", "src", "buildspec.rs")
    found = re.search(r"pub const PIPELINE_VARIABLES: \[&str; \d+\] =\s*\[([^\]]*)\]", open(source).read())
    if found is None:
        sys.exit(f"{source}: no PIPELINE_VARIABLES")
    return re.findall(r'"([A-Z_]+)"', found.group(1))


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


def check_untrusted(template, kind, by_role, errors, approval=None):
    resources = template["Resources"]
    renderer = Renderer(template)
    render = renderer.render
    work_env = function_environment(template, kind, by_role["work"][1])
    check_buildspec_path(template, work_env, errors)

    # PCB_PROJECTS' first table names both pipelines.
    toml_text = render(work_env["PCB_PROJECTS"])
    try:
        projects = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        errors.append(f"PCB_PROJECTS is not TOML ({e}): {toml_text!r}")
        return
    first = next(iter(projects.values()))
    if approval is None and "approval_phrase" in first:
        errors.append(f"approval_phrase is set by default ({first['approval_phrase']!r}); an empty ApprovalPhrase must leave it out")
    elif approval is not None and first.get("approval_phrase") != approval:
        errors.append(f"the first project's approval_phrase is {first.get('approval_phrase')!r}, not {approval!r}")
    phrase_parameter = template.get("Parameters", {}).get("ApprovalPhrase")
    if phrase_parameter is not None:
        # It is pasted into a TOML string: no quote, backslash, control character or edge space.
        pattern = phrase_parameter.get("AllowedPattern", ".*")
        for phrase in APPROVAL_PHRASES_OK:
            if not re.fullmatch(pattern, phrase):
                errors.append(f"ApprovalPhrase's pattern refuses {phrase!r}")
        for phrase in APPROVAL_PHRASES_BAD:
            if re.fullmatch(pattern, phrase):
                errors.append(f"ApprovalPhrase's pattern accepts {phrase!r}")
        phrased = tomllib.loads(Renderer(template, {"ApprovalPhrase": "/ok-to-test"}).render(work_env["PCB_PROJECTS"]))
        if next(iter(phrased.values())).get("approval_phrase") != "/ok-to-test":
            errors.append("ApprovalPhrase=/ok-to-test does not become the first project's approval_phrase")
    by_name = pipelines_by_name(template, render)
    trusted_name, untrusted_name = first.get("pipeline"), first.get("untrusted_pipeline")
    if untrusted_name not in by_name or trusted_name not in by_name:
        errors.append(f"PCB_PROJECTS names pipeline {trusted_name!r} and untrusted_pipeline {untrusted_name!r}; the template defines {sorted(by_name)}")
        return
    if trusted_name == untrusted_name:
        errors.append(f"pipeline and untrusted_pipeline are both {trusted_name!r}")
        return
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

    # The report function hears both projects and both pipelines; work and report may act on both.
    names = {"trusted": trusted_name, "untrusted": untrusted_name}
    if kind == "sam":
        patterns = [e["Properties"]["Pattern"] for e in by_role["report"][1].get("Events", {}).values()
                    if e["Type"] in ("EventBridgeRule", "CloudWatchEvent")]
    else:
        report_arn = f"<{by_role['report'][0]}.Arn>"
        patterns = [r["Properties"]["EventPattern"] for r in resources.values()
                    if r["Type"] == "AWS::Events::Rule"
                    and any(render(t["Arn"]) == report_arn for t in r["Properties"].get("Targets", []))]
    heard = {"project-name": set(), "pipeline": set()}
    for pattern in patterns:
        for field in heard:
            heard[field].update(target_of(v) or render(v) for v in pattern.get("detail", {}).get(field, []))
    for label in ("trusted", "untrusted"):
        if side[label]["project"] not in heard["project-name"]:
            errors.append(f"the report rules do not hear the {label} CodeBuild project {side[label]['project']}")
        logical = by_name[names[label]]
        if logical not in heard["pipeline"]:
            errors.append(f"the report rules do not hear the {label} pipeline {logical}")
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
    """The work function may ListBucket its own source bucket, unconditionally, and no other."""
    render = Renderer(template).render
    work = by_role["work"][1]
    bucket = target_of(function_environment(template, kind, work).get("PCB_BUCKET"))
    arn = f"<{bucket}.Arn>"
    listing = [s for s in function_statements(template, kind, work) if granted(s, "s3:ListBucket")]
    if not any(arn in {render(r) for r in as_list(s.get("Resource", []))} and not s.get("Condition") for s in listing):
        errors.append(f"the work function may not s3:ListBucket its source bucket {bucket} without a Condition "
                      "(a missing key would read as 403, not 404)")
    for statement in listing:
        others = {render(r) for r in as_list(statement.get("Resource", []))} - {arn}
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


def main(kind, path, approval=None):
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
            check_policies(role, statements, ALLOWED[role], kind, errors)
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
            check_policies(role, statements, ALLOWED[role], kind, errors)

    untrusted = check_untrusted(template, kind, by_role, errors, approval)
    check_work_list_bucket(template, kind, by_role, errors)
    check_trust_conditions(template, errors)

    if errors:
        sys.exit(f"{path}:\n  " + "\n  ".join(errors))
    print(f"{path}: visibility {visibility} s = {visibility / work_timeout:.0f} x work timeout, "
          f"maxReceiveCount {max_receive}, IAM of {', '.join(roles)} names only their own resources; "
          f"BuildSpecPath drives every project and the work function; untrusted build role "
          f"{untrusted['build_role']} may only write {untrusted['log_group']} and read {untrusted['bucket']}")


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
    "no untrusted_pipeline in PCB_PROJECTS": lambda t: _work_env(t).update(
        PCB_PROJECTS=re.sub(r"\nuntrusted_pipeline = .*", "", _work_env(t)["PCB_PROJECTS"])),
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
}


def mutants(path):
    """Every CDK_MUTANTS copy of a template that passes must be refused."""
    import copy
    import os
    import subprocess
    import tempfile

    base = json.load(open(path))
    with tempfile.TemporaryDirectory() as folder:
        broken = os.path.join(folder, "broken.json")
        for what, mutate in CDK_MUTANTS.items():
            template = copy.deepcopy(base)
            mutate(template)
            if template == base:
                sys.exit(f"the mutation '{what}' changed nothing")
            with open(broken, "w") as f:
                json.dump(template, f)
            run = subprocess.run([sys.executable, __file__, "cdk", broken], capture_output=True, text=True)
            if run.returncode == 0:
                sys.exit(f"check_templates.py accepted a CDK template with {what}")
            if "Traceback" in run.stderr:
                sys.exit(f"check_templates.py crashed on a CDK template with {what}:\n{run.stderr}")
            print(f"refused, as it should: {what} ({run.stderr.strip().splitlines()[-1].strip()[:160]})")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("sam", "cdk", "mutants") \
            or (len(sys.argv) == 4 and sys.argv[1] != "cdk"):
        sys.exit(__doc__)
    if sys.argv[1] == "mutants":
        mutants(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
