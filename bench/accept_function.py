"""The cold-start baseline: the accept job as a plain Python 3 boto3 Lambda function.

Run by `scripts/bench-cold-start` under the same Runtime API emulator as the Rust functions,
through `awslambdaric` (the runtime interface client of AWS's Python base images), with the
same environment the SAM template gives the Rust accept function. What it does is what a
minimal hand-written accept function would do for Pagure's JSON trigger
(`POST /trigger/<project>`, a function URL event): parse the JSON, compare the token in
constant time against the project's `trigger_token` from Secrets Manager (cached), validate
the cause, branch and repository URL against the project's configuration (the registry
object in S3, or PCB_PROJECTS), send the build request to SQS, answer 202.

Like the Rust function, it creates its clients at init (outside the handler) and reads the
secret and the project configuration on the first call.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import time
import tomllib
import uuid

import boto3

SQS = boto3.client("sqs")
SECRETS = boto3.client("secretsmanager")
S3 = boto3.client("s3")
QUEUE_URL = os.environ["PCB_QUEUE_URL"]
SECRET_ID = os.environ["PCB_SECRET_ID"]
TTL = int(os.environ.get("PCB_SECRETS_TTL_SECONDS") or 300)

CAUSE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64}|[1-9][0-9]{0,9})$")
BRANCH = re.compile(r"^(?!/)(?!.*(?:\.\.|//|@\{|\.lock(?:/|$)))[^\x00-\x20\x7f~^:?*\[\\]{1,255}(?<![/.])$")
_cache = {}


def _cached(name, load):
    now = time.monotonic()
    hit = _cache.get(name)
    if hit and now - hit[0] < TTL:
        return hit[1]
    value = load()
    _cache[name] = (now, value)
    return value


def _secrets():
    return json.loads(SECRETS.get_secret_value(SecretId=SECRET_ID)["SecretString"])


def _projects():
    bucket = os.environ.get("PCB_REGISTRY_BUCKET")
    if bucket:
        key = os.environ.get("PCB_REGISTRY_KEY") or "registry.json"
        document = json.loads(S3.get_object(Bucket=bucket, Key=key)["Body"].read())
        defaults = document.get("defaults", {})
        return {r["match"]: {**defaults, **r} for r in document.get("rules", []) if "*" not in r["match"]}
    return tomllib.loads(os.environ.get("PCB_PROJECTS", ""))


def _answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event, context):
    path = event.get("rawPath", "")
    method = event.get("requestContext", {}).get("http", {}).get("method")
    if method != "POST" or not path.startswith("/trigger/"):
        return _answer(404, {"error": "not_found"})
    key = path[len("/trigger/"):]
    project = _cached("projects", _projects).get(key)
    if project is None:
        return _answer(404, {"error": "unknown_project"})
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        trigger = json.loads(body)
    except ValueError:
        return _answer(400, {"error": "invalid_json"})
    token = (_cached("secrets", _secrets).get("projects", {}).get(key) or {}).get("trigger_token", "")
    header = event.get("headers", {}).get("authorization", "")
    given = header.split(" ", 1)[1] if " " in header else ""
    # Constant time: compare digests of both sides.
    if not token or not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest()):
        return _answer(401, {"error": "invalid_token"})
    cause, branch, repo = str(trigger.get("cause", "")), trigger.get("branch"), trigger.get("repo")
    if not CAUSE.match(cause) or not isinstance(branch, str) or not BRANCH.match(branch):
        return _answer(400, {"error": "invalid_trigger"})
    clone_url = project["git_url"].rstrip("/") + "/" + project.get("project", key) + ".git"
    if repo not in (clone_url, clone_url[: -len(".git")]):
        return _answer(403, {"error": "repo_not_allowed"})
    request_id = uuid.uuid4().hex
    idempotency_key = hashlib.sha256(f"{key}\0{repo}\0{cause}".encode()).hexdigest()
    request = {"request_id": request_id, "idempotency_key": idempotency_key, "project": key, "repo_url": clone_url,
               "cause": cause, "branch": branch, "branch_to": trigger.get("branch_to"), "trigger": "json"}
    SQS.send_message(
        QueueUrl=QUEUE_URL,
        MessageBody=json.dumps(request),
        MessageAttributes={
            "idempotency_key": {"DataType": "String", "StringValue": idempotency_key},
            "project": {"DataType": "String", "StringValue": key},
            "trigger": {"DataType": "String", "StringValue": "json"},
        },
    )
    return _answer(202, {"request_id": request_id, "idempotency_key": idempotency_key, "status": "queued"})
