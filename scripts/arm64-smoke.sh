#!/usr/bin/env bash
# The arm64 (Graviton) build, run for real on an x86_64 machine: cross-build the prepare-cloudtrail
# function with cargo-lambda + Zig, then run its bootstrap under qemu-aarch64 against a minimal
# Lambda Runtime API (this script) and moto_server as S3, with events/prepare-cloudtrail/s3-put.json.
# Checks the function's response and the tuple CSV it wrote.
#
# Needs: rustup target aarch64-unknown-linux-gnu, `pip install cargo-lambda ziglang "moto[server]==5.2.5"`,
# qemu-user and libc6-arm64-cross (Debian). A clean cross build takes about 12 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

cargo lambda build --release --arm64 -p prepare-cloudtrail
BIN=target/lambda/prepare-cloudtrail/bootstrap
file "$BIN" | grep -q 'ARM aarch64' || { echo "FAIL: $BIN is not an aarch64 binary"; exit 1; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(port)
RT_PORT=$(port)
moto_server -H 127.0.0.1 -p "$S3_PORT" >"$TMP/moto.log" 2>&1 &
export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL" >/dev/null && break; sleep 0.2; done

# The CloudTrail object the event names: a few records of the synthetic organisation.
cargo run -q -p ipsight-cli -- synth cloudtrail --out "$TMP/synth" --users 3 --days 1 >/dev/null 2>&1
python3 - "$REPO" "$TMP" <<'PY'
import boto3, glob, gzip, json, sys, urllib.parse
repo, tmp = sys.argv[1], sys.argv[2]
ev = json.load(open(f"{repo}/events/prepare-cloudtrail/s3-put.json"))
s3o = ev["Records"][0]["s3"]
bucket, key = s3o["bucket"]["name"], urllib.parse.unquote_plus(s3o["object"]["key"])
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.create_bucket(Bucket="ipsight-local-data")
import os
f = max((p for p in glob.glob(f"{tmp}/synth/**/*.json.gz", recursive=True) if "_CloudTrail_" in p), key=os.path.getsize)
s3.put_object(Bucket=bucket, Key=key, Body=open(f, "rb").read())
open(f"{tmp}/expected-key", "w").write("train/cloudtrail/" + key[: -len(".json.gz")] + ".csv")
PY

# A minimal Lambda Runtime API: one invocation (the event file), then the response is saved and the
# server exits.
python3 - "$RT_PORT" "$REPO/events/prepare-cloudtrail/s3-put.json" "$TMP/response.json" <<'PY' &
import http.server, sys, threading
port, event, out = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.endswith("/invocation/next"):
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "arm64-smoke-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:111122223333:function:prepare-cloudtrail")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(event)
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        open(out, "wb").write(body)
        self.send_response(202)
        self.end_headers()
        threading.Thread(target=self.server.shutdown).start()
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
RT_PID=$!
sleep 0.5

env AWS_LAMBDA_RUNTIME_API="127.0.0.1:$RT_PORT" AWS_LAMBDA_FUNCTION_NAME=prepare-cloudtrail \
  AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
  AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/prepare-cloudtrail AWS_LAMBDA_LOG_STREAM_NAME=smoke \
  OUTPUT_BUCKET=ipsight-local-data \
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$BIN" >"$TMP/function.log" 2>&1 &
FN_PID=$!
for _ in $(seq 300); do [ -s "$TMP/response.json" ] && break; sleep 0.2; done
kill "$FN_PID" 2>/dev/null || true
wait "$RT_PID" 2>/dev/null || true

python3 - "$TMP" <<'PY'
import boto3, json, sys
tmp = sys.argv[1]
try:
    r = json.load(open(f"{tmp}/response.json"))
except Exception as e:
    print(f"FAIL: no response from the arm64 function ({e}); its log:")
    print(open(f"{tmp}/function.log").read()[-2000:])
    sys.exit(1)
key = open(f"{tmp}/expected-key").read()
body = boto3.client("s3").get_object(Bucket="ipsight-local-data", Key=key)["Body"].read()
ok = r.get("failed") == [] and r.get("written") and len(body.splitlines()) == r["stats"]["tuples"] > 0
print(("ok  " if ok else "FAIL") + f" arm64 prepare-cloudtrail under qemu: {r['stats']['records']} records, "
      f"{r['stats']['tuples']} tuples written to s3://ipsight-local-data/{key}")
sys.exit(0 if ok else 1)
PY
