"""Invariants of the deployment templates, checked offline on the SAM template and on the
CDK app's synthesized template (run by scripts/check-infra):

- the build queue's visibility timeout is at least 6 x the work function's timeout, its
  redrive sends to a dead-letter queue after >= 5 receives, and the work function is told
  the same count;
- the work function's SQS source reports partial batch failures;
- the accept function has a public function URL (Pagure cannot sign requests);
- every function's IAM statements name only that function's own resources: no "*", and
  no reference to a resource outside its list.

Usage: check_templates.py sam TEMPLATE | check_templates.py cdk TEMPLATE
"""

import re
import sys

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

    if errors:
        sys.exit(f"{path}:\n  " + "\n  ".join(errors))
    print(f"{path}: visibility {visibility} s = {visibility / work_timeout:.0f} x work timeout, "
          f"maxReceiveCount {max_receive}, IAM of {', '.join(roles)} names only their own resources")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("sam", "cdk"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
