#!/usr/bin/env python3
"""Cold start of each Lambda function's release binary, measured the way Lambda sees it.

    scripts/bench/cold_start.py TARGET_DIR [RUNS]      (e.g. target/release 7)

Starts moto_server (S3) with a data bucket holding a model and its baseline sidecar at MODEL_URI, then
starts each function's binary against a minimal Lambda Runtime API on loopback and records
  init  = exec -> the function's first GET /runtime/invocation/next (config read, clients built, model
          and sidecar loaded: what Lambda reports as Init Duration)
  first = that GET -> the response to one empty event (not for the retrain: one invocation trains)
and prints the median of RUNS cold starts and each binary's size. Needs moto_server, boto3 and the
`ipsight` binary in TARGET_DIR (to train the model).
"""
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3

TARGET = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release")
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
DATA = "ipsight-bench-data"
MODEL_KEY = "models/current/model.ipsm"
EVENTS = {
    "prepare-cloudtrail": {"Records": []},
    "extract-guardduty": {"Records": []},
    "ipcheck": {"Records": []},
    "fuse": None,
    "scheduled-retrain": None,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_api(event):
    state = {"t_next": None, "t_done": None, "served": False, "ok": False, "payload": b"",
             "done": threading.Event()}

    class Api(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if state["t_next"] is None:
                state["t_next"] = time.perf_counter()
            if event is None or state["served"]:
                if event is None:
                    state["done"].set()
                time.sleep(30)
                return
            state["served"] = True
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-start-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:111122223333:function:bench")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            state["payload"] = self.rfile.read(n)
            state["t_done"] = time.perf_counter()
            state["ok"] = self.path.endswith("/response")
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state["done"].set()

    return Api, state


def one_cold_start(binary, env, event):
    api, state = make_api(event)
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), api)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}")
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = state["done"].wait(60)
    p.kill()
    err = p.communicate()[1].decode(errors="replace")
    server.shutdown()
    server.server_close()
    if not finished or state["t_next"] is None:
        raise SystemExit(f"{binary}: no poll within 60 s\n{err[-2000:]}")
    if event is not None and not state["ok"]:
        raise SystemExit(f"{binary}: the invocation failed: {state['payload']!r}\n{err[-2000:]}")
    init = (state["t_next"] - t0) * 1000
    first = (state["t_done"] - state["t_next"]) * 1000 if event is not None else None
    return init, first


def main():
    tmp = tempfile.mkdtemp(prefix="ipsight-cold-")
    port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        s3.create_bucket(Bucket=DATA)
        ipsight = os.path.join(TARGET, "ipsight")
        with open(f"{tmp}/train.csv", "w") as out:
            subprocess.run([ipsight, "synth", "pairs", "--users", "200", "--days", "14"], check=True,
                           stdout=out, stderr=subprocess.DEVNULL)
        subprocess.run([ipsight, "train", "--train", f"{tmp}/train.csv", "--model", f"{tmp}/model.ipsm",
                        "--epochs", "2"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s3.upload_file(f"{tmp}/model.ipsm", DATA, MODEL_KEY)
        s3.upload_file(f"{tmp}/model.ipsb", DATA, MODEL_KEY[: -len(".ipsm")] + ".ipsb")
        sizes = (os.path.getsize(f"{tmp}/model.ipsm") / 1e6, os.path.getsize(f"{tmp}/model.ipsb") / 1e6)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_SESSION_TOKEN="test", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                   AWS_ENDPOINT_URL=url, AWS_EC2_METADATA_DISABLED="true",
                   AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
                   AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench",
                   AWS_LAMBDA_LOG_STREAM_NAME="bench", OUTPUT_BUCKET=DATA, DATA_BUCKET=DATA,
                   MODEL_URI=f"s3://{DATA}/{MODEL_KEY}", SCORES_PREFIX="scores/", ALERTS_PREFIX="alerts/",
                   FINDINGS_PREFIX="infer/guardduty/findings/", REPORTS_PREFIX="reports/",
                   TRAINING_URI=f"s3://{DATA}/train/", ALERT_MIN_PERCENTILE="99.5",
                   HYPERPARAMETERS='{"num_entity_vectors": 20000, "vector_dim": 128}')
        env.pop("AWS_PROFILE", None)
        print(f"model {sizes[0]:.1f} MB + sidecar {sizes[1]:.2f} MB at MODEL_URI; median of {RUNS} cold "
              f"starts; binaries in {TARGET}")
        print(f"{'function':<20} {'binary MB':>9} {'init ms':>9} {'first invoke ms':>16}")
        for fn, event in EVENTS.items():
            binary = os.path.join(TARGET, fn)
            runs = [one_cold_start(binary, env, event) for _ in range(RUNS)]
            init = statistics.median(r[0] for r in runs)
            first = statistics.median(r[1] for r in runs) if event is not None else None
            size = os.path.getsize(binary) / 1e6
            first_s = f"{first:.1f}" if first is not None else "-"
            print(f"{fn:<20} {size:>9.1f} {init:>9.1f} {first_s:>16}", flush=True)
    finally:
        moto.kill()


if __name__ == "__main__":
    main()
