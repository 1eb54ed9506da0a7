"""Deletes a pagure-ci-bridge stack (SAM or CDK) whose buckets are versioned (scripts/teardown).

CloudFormation cannot delete a bucket that still holds objects, and in a versioned bucket
deleting an object only adds a delete marker: `sam delete` (and `cdk destroy`) then fail
with "The bucket you tried to delete is not empty". This empties every version and delete
marker of each bucket the stack would delete, then deletes the stack: with `sam delete` when
the SAM CLI is given (it also removes the packaged code it uploaded), else CloudFormation's
DeleteStack, waiting for the end either way.

Buckets whose DeletionPolicy is Retain (the project registry) are left as they are, unless
--with-registry: then they are emptied and deleted after the stack.

The stack deletes its secret (shard 0 of the tokens); the shards `pagure-ci-bridge projects
add` created (secrets named <SecretName>-shard-<i>, not the stack's) are deleted after it,
with Secrets Manager's default recovery window (30 days), or at once with
--force-delete-secrets, which also deletes the stack's own secret at once (so that its name
can be taken again by a new stack).

Usage: teardown.py STACK [--region REGION] [--with-registry] [--force-delete-secrets]
                   [--sam PATH-TO-SAM] [--yes]
"""

import argparse
import json
import re
import subprocess
import sys

import boto3


def empty(s3, bucket):
    """Deletes every object version and delete marker; returns how many."""
    count = 0
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in pages:
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                sys.exit(f"teardown: could not delete from {bucket}: {answer['Errors'][:3]}")
            count += len(batch)
    return count


def secret_name(cloudformation, secrets, stack):
    """The name of the stack's secret: its SecretName output (a name; an ARN in stacks older
    than SecretShards), else its AWS::SecretsManager::Secret resource; None without one."""
    outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    ids = [o["OutputValue"] for o in outputs if o["OutputKey"] == "SecretName"]
    ids += [r["PhysicalResourceId"] for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
            for r in page["StackResourceSummaries"] if r["ResourceType"] == "AWS::SecretsManager::Secret" and r.get("PhysicalResourceId")]
    for secret_id in ids:
        try:
            return secrets.describe_secret(SecretId=secret_id)["Name"]
        except secrets.exceptions.ResourceNotFoundException:
            if not secret_id.startswith("arn:"):
                return secret_id
    return None


def shards_of(secrets, name, include_deleted):
    """(name, ARN) of every secret named <name>-shard-<i>."""
    shard = re.compile(re.escape(name) + r"-shard-[0-9]+")
    pages = secrets.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [f"{name}-shard-"]}], IncludePlannedDeletion=include_deleted)
    return sorted((s["Name"], s["ARN"]) for page in pages for s in page["SecretList"] if shard.fullmatch(s["Name"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack")
    parser.add_argument("--region")
    parser.add_argument("--with-registry", action="store_true", help="also empty and delete retained buckets (the project registry)")
    parser.add_argument("--force-delete-secrets", action="store_true",
                        help="delete the secret's shards, and the stack's secret, without a recovery window")
    parser.add_argument("--sam", help="the SAM CLI to delete the stack with (default: CloudFormation DeleteStack)")
    parser.add_argument("--yes", action="store_true", help="do not ask")
    args = parser.parse_args()
    session = boto3.session.Session(region_name=args.region)
    cloudformation, s3, secrets = session.client("cloudformation"), session.client("s3"), session.client("secretsmanager")
    template = cloudformation.get_template(StackName=args.stack, TemplateStage="Processed")["TemplateBody"]
    if isinstance(template, str):
        template = json.loads(template) if template.lstrip().startswith("{") else __import__("yaml").safe_load(template)
    resources = cloudformation.get_paginator("list_stack_resources").paginate(StackName=args.stack)
    buckets = [(r["LogicalResourceId"], r["PhysicalResourceId"]) for page in resources for r in page["StackResourceSummaries"]
               if r["ResourceType"] == "AWS::S3::Bucket" and r.get("PhysicalResourceId")]
    retained = {logical for logical, resource in template.get("Resources", {}).items() if resource.get("DeletionPolicy") == "Retain"}
    doomed = [(logical, name) for logical, name in buckets if logical not in retained]
    kept = [(logical, name) for logical, name in buckets if logical in retained]
    base = secret_name(cloudformation, secrets, args.stack)
    shards = shards_of(secrets, base, args.force_delete_secrets) if base else []
    print(f"teardown: stack {args.stack}: emptying {', '.join(n for _, n in doomed) or 'no bucket'}"
          + (f"; {'deleting' if args.with_registry else 'keeping'} {', '.join(n for _, n in kept)}" if kept else "")
          + (f"; deleting the secret shards {', '.join(n for n, _ in shards)}" if shards else "")
          + (" (without recovery)" if args.force_delete_secrets else ""))
    if not args.yes and input("Delete the stack and every version of those objects? [y/N] ").strip().lower() != "y":
        sys.exit("teardown: nothing deleted")
    for logical, name in doomed:
        print(f"teardown: {logical} ({name}): {empty(s3, name)} versions and delete markers deleted")
    if args.sam:
        command = [args.sam, "delete", "--stack-name", args.stack, "--no-prompts"] + (["--region", args.region] if args.region else [])
        subprocess.run(command, check=True)
    else:
        cloudformation.delete_stack(StackName=args.stack)
        cloudformation.get_waiter("stack_delete_complete").wait(StackName=args.stack, WaiterConfig={"Delay": 5, "MaxAttempts": 360})
    print(f"teardown: stack {args.stack} deleted")
    # The shards are not the stack's: they go once the stack's secret (shard 0) went.
    doomed_secrets = shards + ([(base, base)] if base and args.force_delete_secrets else [])
    for name, secret_id in doomed_secrets:
        try:
            if args.force_delete_secrets:
                secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
            else:
                secrets.delete_secret(SecretId=secret_id)
        except secrets.exceptions.ResourceNotFoundException:
            continue
        print(f"teardown: secret {name} deleted" + ("" if args.force_delete_secrets else " (recoverable for 30 days)"))
    if args.with_registry:
        for logical, name in kept:
            print(f"teardown: {logical} ({name}): {empty(s3, name)} versions and delete markers deleted")
            s3.delete_bucket(Bucket=name)
            print(f"teardown: {logical} ({name}) deleted")


if __name__ == "__main__":
    main()
