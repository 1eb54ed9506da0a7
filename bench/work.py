"""Work-stage benchmark (run by scripts/bench-work, with the project's venv python).

Builds corpora (a generated tree, served as a push leaves it and as loose objects, and a
real project's tree), serves them over smart HTTP (git http-backend), and times in the same
run:
  ours:     fetch -> inject -> zip -> upload to S3 (moto), the real worker (work_once)
  baseline: git clone --depth 1 --branch B  +  zip -r -6 -x '.git/*'  +  boto3 upload_file
Prints wall time (median of RUNS), the ratio, peak RSS of each, and the zip sizes.
"""
import json, os, random, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "3"))
FILES = int(os.environ.get("FILES", "20000"))
MEGABYTES = int(os.environ.get("MEGABYTES", "200"))
TIME = "/usr/bin/time"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def git(*args, cwd=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x")
    # No automatic gc: `git commit` starts one in the background, which packed the corpus
    # before or after the bare copy was made, depending on timing.
    subprocess.run(["git", "-c", "gc.auto=0", "-c", "maintenance.auto=false", *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL)


BUILDSPEC = "version: 0.2\nphases:\n  build:\n    commands:\n      - make check\n"


def generated_tree(dest):
    """FILES files, MEGABYTES in all, source-like text (compresses like code does)."""
    rnd = random.Random(42)
    words = ["fn", "let", "mut", "return", "struct", "impl", "self", "match", "Some", "None", "Ok", "Err",
             "value", "request", "config", "error", "build", "commit", "branch", "project", "=>", "{", "}", "(", ")", ";"]
    words += ["ident%d" % i for i in range(400)]
    target = MEGABYTES * 1024 * 1024 // FILES
    for i in range(FILES):
        d = os.path.join(dest, "src", "m%03d" % (i // 100))
        os.makedirs(d, exist_ok=True)
        size = max(64, int(rnd.expovariate(1 / target)))
        lines, n = [], 0
        while n < size:
            line = "    " + " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 12))) + "\n"
            lines.append(line); n += len(line)
        with open(os.path.join(d, "f%05d.rs" % i), "w") as f:
            f.write("".join(lines))
    with open(os.path.join(dest, "buildspec.yml"), "w") as f:
        f.write(BUILDSPEC)


def public_tree(dest):
    """A real public project's published source tree: aws-sdk-s3 from the cargo registry."""
    registry = os.path.expanduser("~/.cargo/registry/src")
    for index in sorted(os.listdir(registry)):
        for name in sorted(os.listdir(os.path.join(registry, index))):
            if name.startswith("aws-sdk-s3-"):
                shutil.copytree(os.path.join(registry, index, name), dest)
                with open(os.path.join(dest, "buildspec.yml"), "w") as f:
                    f.write(BUILDSPEC)
                return name
    raise SystemExit("no aws-sdk-s3 source in the cargo registry: run `cargo build` first")


def make_repo(tree, bare, pushed=True):
    """The served repository. `pushed`: as a forge stores it, created by a push (a push of
    more than receive.unpackLimit objects is kept as one pack, with the pusher's deltas).
    Otherwise a local `git clone --bare`, which links the source's loose objects: the server
    then compresses every object again for each clone (200 MB of deflate on these 2 cores,
    for both sides)."""
    if not os.path.exists(os.path.join(tree, ".git")):
        git("init", "-q", "-b", "rawhide", cwd=tree)
        git("add", "-A", cwd=tree)
        git("commit", "-q", "-m", "corpus", cwd=tree)
    if pushed:
        git("init", "-q", "--bare", "-b", "rawhide", bare)
        git("push", "-q", bare, "rawhide", cwd=tree)
    else:
        git("clone", "-q", "--bare", tree, bare)
        counts = subprocess.run(["git", "count-objects", "-v"], cwd=bare, capture_output=True, text=True, check=True).stdout
        if "in-pack: 0" not in counts:
            raise SystemExit("the loose-object copy holds packs:\n" + counts)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True).stdout.strip()


def serve_git(root):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def handle_cgi(self):
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1",
                   "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                   "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                   "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "REMOTE_ADDR": "127.0.0.1"}
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
            head, _, content = out.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode().splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                else:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = handle_cgi

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return "http://127.0.0.1:%d" % server.server_address[1]


def timed(cmd, cwd=None, env=None):
    """Runs cmd under GNU time; returns (wall seconds, peak RSS KiB)."""
    result = subprocess.run([TIME, "-f", "%e %M", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (cmd, result.stderr[-2000:]))
    wall, rss = result.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss)


def main():
    work = tempfile.mkdtemp(prefix="pcb-bench-")
    srv = os.path.join(work, "srv"); os.makedirs(srv)
    corpora = []
    t = os.path.join(work, "generated"); os.makedirs(t)
    generated_tree(t)
    corpora.append(("generated %d files" % FILES, "generated", make_repo(t, os.path.join(srv, "generated.git"))))
    corpora.append(("same, loose objects", "loose", make_repo(t, os.path.join(srv, "loose.git"), pushed=False)))
    t = os.path.join(work, "public")
    name = public_tree(t)
    corpora.append((name, "public", make_repo(t, os.path.join(srv, "public.git"))))
    git_base = serve_git(srv)

    moto_port = free_port()
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = "http://127.0.0.1:%d" % moto_port
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/"); break
        except Exception:
            time.sleep(0.1)
    aws_env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="bench")
    s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})

    projects = "".join('[%s]\npagure_url = "http://127.0.0.1:5600/"\ngit_url = "%s"\nproject = "%s"\npipeline = "p"\nallow_insecure_git_url = true\n'
                       % (key, git_base, key) for _, key, _ in corpora)
    ours_env = dict(aws_env, PCB_PROJECTS=projects, PCB_SECRET_ID="unused", PCB_BUCKET="bench", RUST_LOG="warn", TMPDIR=work)
    work_once = os.path.join(ROOT, "target", "release", "examples", "work_once")
    upload = "import boto3,sys; boto3.client('s3').upload_file(sys.argv[1], 'bench', sys.argv[2])"

    print("%-26s %9s %9s %6s %10s %10s %11s %11s %6s" % ("corpus", "ours s", "base s", "ratio", "ours RSS", "base RSS", "ours zip", "zip -6", "size"))
    for label, key, sha in corpora:
        ours, base = [], []
        for run in range(RUNS):
            request_id = "bench%s%d%d" % (key, run, time.time_ns())
            # A distinct idempotency key per run: the same one would be merged into the first
            # run's build (dedupe), which is not what is measured.
            request = {"request_id": request_id, "idempotency_key": request_id,
                       "project": {"key": key, "namespace": None, "name": key, "fork_user": None},
                       "repo_url": "%s/%s.git" % (git_base, key), "cause": {"kind": "commit", "sha": sha},
                       "branch": "rawhide", "branch_to": None, "trigger": "json", "received_at": "2026-11-21T00:00:00Z"}
            path = os.path.join(work, "request.json")
            with open(path, "w") as f:
                json.dump(request, f)
            wall, rss = timed([work_once, path], env=ours_env)
            size = s3.head_object(Bucket="bench", Key="sources/%s/%s.zip" % (key, request["request_id"]))["ContentLength"]
            ours.append((wall, rss, size))

            clone = os.path.join(work, "clone"); shutil.rmtree(clone, ignore_errors=True)
            out = os.path.join(work, "base.zip")
            if os.path.exists(out):
                os.remove(out)
            w1, r1 = timed(["git", "clone", "-q", "--depth", "1", "--branch", "rawhide", "%s/%s.git" % (git_base, key), clone])
            w2, r2 = timed(["zip", "-r", "-6", "-q", out, ".", "-x", ".git/*"], cwd=clone)
            w3, r3 = timed([sys.executable, "-c", upload, out, "baseline/%s-%d.zip" % (key, run)], env=aws_env)
            base.append((w1 + w2 + w3, max(r1, r2, r3), os.path.getsize(out)))
        o = sorted(ours)[len(ours) // 2]; b = sorted(base)[len(base) // 2]
        print("%-26s %9.2f %9.2f %6.2f %7.1f MiB %7.1f MiB %8.1f MiB %8.1f MiB %6.3f" % (
            label[:26], o[0], b[0], o[0] / b[0], max(x[1] for x in ours) / 1024, max(x[1] for x in base) / 1024,
            o[2] / 2**20, b[2] / 2**20, o[2] / b[2]))
    moto.terminate()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
