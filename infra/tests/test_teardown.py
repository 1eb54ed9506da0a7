"""scripts/teardown's work against moto's S3 and CloudFormation: a stack whose versioned
buckets hold object versions and delete markers is deleted, the artifact bucket with it and
the registry bucket (DeletionPolicy Retain) kept with every version; with --with-registry the
registry goes too. The stack's secret shards (<SecretName>-shard-<i>, outside the stack) are
deleted with a recovery window, or at once with --force-delete-secrets (the stack's secret
too); another stack's shards and look-alike names are kept. Runs infra/tools/teardown.py as
scripts/teardown does (`sam delete`). (moto's CloudFormation cannot create a secret: the test
creates the stack's secret beside it and names it in the SecretName output, as the templates do.)

Usage: test_teardown.py SAM  (a Python with moto[server] and boto3 runs it)
"""

import json
import logging
import os
import subprocess
import sys

import boto3
from moto.server import ThreadedMotoServer

TEARDOWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "teardown.py")
TEMPLATE = {"Parameters": {"NamePrefix": {"Type": "String"}}, "Outputs": {
    "SecretName": {"Value": {"Fn::Sub": "${NamePrefix}-secrets"}}}, "Resources": {
    "ArtifactBucket": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
    "RegistryBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                       "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
}}


def main(sam):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "SAM_CLI_TELEMETRY": "0"}
    clients = {k: boto3.client(k, endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                               aws_access_key_id="x", aws_secret_access_key="x") for k in ("s3", "cloudformation", "secretsmanager")}
    s3, cloudformation, secrets = clients["s3"], clients["cloudformation"], clients["secretsmanager"]

    def state(name):
        """'live', 'scheduled' (deleted, recoverable) or 'gone'."""
        try:
            return "scheduled" if "DeletedDate" in secrets.describe_secret(SecretId=name) else "live"
        except secrets.exceptions.ResourceNotFoundException:
            return "gone"

    # Another stack's shard, and names the pattern must not take.
    bystanders = ["pcbkeepx-secrets-shard-1", "pcbkeep-secrets-shard-x", "pcbkeep-secretsx-shard-1", "pcbkeep-secrets-shard-1-old"]
    for name in bystanders:
        secrets.create_secret(Name=name, SecretString="{}")
    try:
        for stack, prefix, extra in (("pcb-keep", "pcbkeep", []), ("pcb-all", "pcball", ["--with-registry", "--force-delete-secrets"])):
            cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(TEMPLATE),
                                        Parameters=[{"ParameterKey": "NamePrefix", "ParameterValue": prefix}])
            base = f"{prefix}-secrets"
            secrets.create_secret(Name=base, SecretString='{"projects": {}}')
            shards = [f"{base}-shard-{i}" for i in (1, 2, 12)]
            for name in shards:
                secrets.create_secret(Name=name, SecretString='{"projects": {}}')
            buckets = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                       for r in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]}
            for name in buckets.values():
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
                for i in range(3):
                    s3.put_object(Bucket=name, Key=f"sources/rpms/bash/{i}.zip", Body=b"1")
                    s3.put_object(Bucket=name, Key=f"sources/rpms/bash/{i}.zip", Body=b"2")
                s3.delete_object(Bucket=name, Key="sources/rpms/bash/0.zip")
            run = subprocess.run([sys.executable, TEARDOWN, stack, "--yes", "--region", "us-east-1", "--sam", sam, *extra],
                                 env=env, capture_output=True, text=True)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "7 versions and delete markers deleted" in run.stdout, run.stdout
            force = "--force-delete-secrets" in extra
            for name in shards:
                assert state(name) == ("gone" if force else "scheduled"), (name, state(name), run.stdout)
                assert f"teardown: secret {name} deleted" in run.stdout, run.stdout
            # The stack deletes its own secret (not moto's); the flag deletes it at once.
            assert state(base) == ("gone" if force else "live"), (base, state(base))
            for name in bystanders:
                assert state(name) == "live", (name, state(name), run.stdout)
            left = {b["Name"] for b in s3.list_buckets()["Buckets"]}
            assert buckets["ArtifactBucket"] not in left, (stack, left)
            status = [s["StackStatus"] for s in cloudformation.list_stacks()["StackSummaries"] if s["StackName"] == stack]
            assert status == ["DELETE_COMPLETE"], status
            if extra:
                assert buckets["RegistryBucket"] not in left, left
            else:
                versions = s3.list_object_versions(Bucket=buckets["RegistryBucket"])
                kept = len(versions.get("Versions", [])) + len(versions.get("DeleteMarkers", []))
                assert kept == 7, kept
            print(f"teardown {stack} {' '.join(extra)}: stack deleted, artifact bucket emptied (7 versions and markers) and "
                  f"deleted, registry {'emptied and deleted' if extra else 'kept with its 7 versions and markers'}, "
                  f"{len(shards)} secret shards {'deleted without recovery' if force else 'scheduled for deletion'}, "
                  f"{len(bystanders)} other secrets kept")
    finally:
        server.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
