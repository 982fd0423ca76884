#!/usr/bin/env bash
# The README's local-testing procedure (docs/local-testing.md), run for real with no AWS account:
# moto_server as S3, `cargo lambda watch` as the Lambda service, and `cargo lambda invoke` with every
# event in events/, chained like production:
#   prepare-cloudtrail -> ipsight train (+ upload model) -> extract-guardduty -> ipcheck -> fuse
# Every output is checked with boto3. Prints one line per check and ends with
#   local-invoke: N passed, M failed
# Exit status 0 only when nothing failed. Everything generated goes to a temporary directory outside
# the repository (kept when KEEP_TMP=1 or when a check failed); only loopback addresses are used.
#
# Needs: cargo, python3 with boto3, moto_server and cargo-lambda
#   (python3 -m pip install "moto[server]==5.2.5" cargo-lambda; scripts/test installs them).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

# ---------------------------------------------------------------- configuration (fixed, as in events/)
ACCOUNT=111122223333
REGION=us-east-1
TRAIL_BUCKET=ipsight-local-trail
DATA_BUCKET=ipsight-local-data
GUARDDUTY_BUCKET=ipsight-local-guardduty
LAKE_BUCKET=aws-security-data-lake-local
MODEL_KEY=models/current/model.ipsm
# The Security Lake object uploaded under the key events/ipcheck/sqs-security-lake.json points at:
# LAKE_SAMPLE if set (any OCSF Parquet file, e.g. one of Security Lake's published samples), else one
# we write (crates/testkit/examples/security_lake_object.rs) after the build.
LAKE_SAMPLE="${LAKE_SAMPLE:-}"
# Time bounds (seconds).
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
INVOKE_TIMEOUT=${INVOKE_TIMEOUT:-600}
START_TIMEOUT=${START_TIMEOUT:-60}

# ---------------------------------------------------------------- bookkeeping
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ipsight-local-invoke.XXXXXX")
mkdir -p "$TMP/out"
PASSED=0
FAILED=0
MOTO_PID=
WATCH_PID=
STARTED=$(date +%s)

cleanup() {
  # Only the processes this script started, by id (watch runs in its own process group).
  if [ -n "$WATCH_PID" ]; then kill -- "-$WATCH_PID" 2>/dev/null || kill "$WATCH_PID" 2>/dev/null; fi
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null; fi
  wait $WATCH_PID $MOTO_PID 2>/dev/null
  if [ "${KEEP_TMP:-0}" = 1 ] || [ "$FAILED" -gt 0 ]; then
    echo "local-invoke: logs and outputs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
finish() {
  echo "local-invoke: finished in $(( $(date +%s) - STARTED ))s"
  echo "local-invoke: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}
# A step that must succeed for the rest to make sense: on failure, count it and stop.
must() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; finish; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # URL SECONDS: any HTTP answer counts
  python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request, urllib.error
url, deadline = sys.argv[1], time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        urllib.request.urlopen(url, timeout=2); sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.3)
sys.exit(1)
PY
}

for tool in cargo python3 moto_server cargo-lambda; do
  command -v "$tool" >/dev/null 2>&1 || { fail "tool $tool is installed (python3 -m pip install \"moto[server]==5.2.5\" cargo-lambda)"; finish; }
done
python3 -c 'import boto3' 2>/dev/null || { fail "python3 can import boto3 (it ships with moto)"; finish; }

# ---------------------------------------------------------------- the boto3 side: fixtures and checks
cat >"$TMP/li.py" <<'PY'
"""Fixtures and checks for scripts/local-invoke.sh. Usage: li.py COMMAND ARGS...; prints `ok`/`FAIL` lines."""
import csv, glob, gzip, io, ipaddress, json, math, os, sys
import boto3

ACCOUNT, REGION = "111122223333", "us-east-1"
TRAIL, DATA, GD, LAKE = "ipsight-local-trail", "ipsight-local-data", "ipsight-local-guardduty", "aws-security-data-lake-local"
REPO, TMP = os.environ["REPO"], os.environ["TMP"]
import botocore.config
# Seen with moto 5.2.5: an object written by the retrain's CopyObject (aws-sdk-rust) is served with
# a CRC32 header that does not match its body, which boto3 then rejects. The checks below compare
# whole bodies byte for byte instead of relying on that header.
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=REGION,
                  config=botocore.config.Config(response_checksum_validation="when_required"))
failed = 0

def check(ok, what, detail=""):
    global failed
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"))
    if not ok:
        failed += 1

def event(path):
    with open(os.path.join(REPO, "events", path)) as f:
        return json.load(f)

def s3_objects(ev):
    """(bucket, decoded key) of every object an event names (S3, SQS-wrapped, EventBridge)."""
    from urllib.parse import unquote_plus
    out = []
    if "Records" in ev:
        for r in ev["Records"]:
            if r.get("eventSource") == "aws:sqs":
                out += s3_objects(json.loads(r["body"]))
            elif "s3" in r:
                out.append((r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])))
    elif ev.get("detail-type") == "Object Created":
        out.append((ev["detail"]["bucket"]["name"], ev["detail"]["object"]["key"]))
    return out

def get(bucket, key):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None

def keys(bucket, prefix=""):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out

def response(name):
    with open(os.path.join(TMP, "out", name + ".json")) as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError:
        return {"unparsed": text}

# -------- expected values, computed here from the raw inputs (independently of the Rust code)
def cloudtrail_tuples(records):
    """The ARCHITECTURE.md normalisation: one `entity,ip` per record with a principal and an IP
    address; IPv6 too, as the Lambda's default `IPV6=keep` writes it (RFC 5952 text, which Python's
    `str` gives; `::ffff:a.b.c.d` is the IPv4 host)."""
    out = []
    for r in records:
        u = r.get("userIdentity") or {}
        pid = u.get("principalId")
        if not pid:
            continue
        if u.get("type") == "AssumedRole":
            pid = pid.split(":", 1)[0]
        try:
            ip = ipaddress.ip_address(r.get("sourceIPAddress") or "")
        except ValueError:
            continue
        if ip.version == 6:
            if ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            elif ip.is_multicast or ip.is_unspecified:
                continue
        out.append(f"{pid},{ip}")
    return sorted(out)

def finding_pairs(f):
    pid = f["resource"]["accessKeyDetails"]["principalId"]
    if f["resource"]["accessKeyDetails"].get("userType") == "AssumedRole":
        pid = pid.split(":", 1)[0]
    return [(pid, f["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"])]

def record_key(fid):
    return f"infer/guardduty/findings/{ACCOUNT}/{REGION}/{fid}.json"

def all_findings():
    out = [event("extract-guardduty/eventbridge-finding.json")["detail"]]
    with open(os.path.join(REPO, "events/extract-guardduty/s3-export.object.jsonl")) as f:
        out += [json.loads(l) for l in f if l.strip()]
    return out

# -------- commands
def setup(synth_dir):
    for b in (TRAIL, DATA, GD, LAKE):
        s3.create_bucket(Bucket=b)
    # One CloudTrail log file under the events' key, holding every record of the synthetic trail
    # (a busy account's 5-minute file holds hundreds), its account id replaced by the events' one.
    files = sorted(f for f in glob.glob(os.path.join(synth_dir, "**/*.json.gz"), recursive=True)
                   if "/CloudTrail/" in f and "_CloudTrail_" in os.path.basename(f))
    check(len(files) > 0, f"synthetic trail has log files ({len(files)})")
    synth_account = os.path.relpath(files[0], synth_dir).split(os.sep)[1]
    records = []
    for f in files:
        with gzip.open(f, "rt") as g:
            records += json.loads(g.read().replace(synth_account, ACCOUNT))["Records"]
    records.sort(key=lambda r: (r.get("eventTime", ""), r.get("eventID", "")))
    body = gzip.compress(json.dumps({"Records": records}, separators=(",", ":")).encode(), mtime=0)
    [(bucket, key)] = s3_objects(event("prepare-cloudtrail/s3-put.json"))
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", ContentEncoding="gzip")
    with open(os.path.join(TMP, "expected-cloudtrail.csv"), "w") as f:
        f.write("".join(t + "\n" for t in cloudtrail_tuples(records)))
    check(True, f"uploaded s3://{bucket}/{key} ({len(records)} records, {len(body)} bytes)")
    # The GuardDuty export object (export files are gzipped JSON lines, one finding per line).
    [(bucket, key)] = s3_objects(event("extract-guardduty/s3-export.json"))
    with open(os.path.join(REPO, "events/extract-guardduty/s3-export.object.jsonl"), "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(f.read(), mtime=0))
    check(True, f"uploaded s3://{bucket}/{key}")
    # The Security Lake sample under the subscriber notification's key.
    [(bucket, key)] = s3_objects(event("ipcheck/sqs-security-lake.json"))
    with open(os.environ["LAKE_SAMPLE"], "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    check(True, f"uploaded s3://{bucket}/{key}")

def check_prepare(name):
    r = response(name)
    if name.endswith("sqs-s3"):
        check(r == {"batchItemFailures": []}, f"{name}: batchItemFailures is empty", r)
    else:
        check(not r.get("failed") and len(r.get("written", [])) == 1, f"{name}: one CSV written, none failed", r)
    [(_, key)] = [o for o in s3_objects(event(f"prepare-cloudtrail/{name.split('.', 1)[1]}.json"))]
    out_key = "train/cloudtrail/" + key[: -len(".json.gz")] + ".csv"
    body = get(DATA, out_key)
    check(body is not None, f"{name}: s3://{DATA}/{out_key} exists")
    if body is None:
        return
    with open(os.path.join(TMP, "expected-cloudtrail.csv")) as f:
        expected = f.read().splitlines()
    got = sorted(body.decode().splitlines())
    check(got == expected, f"{name}: CSV has the {len(expected)} expected entity,ip tuples",
          f"got {len(got)}; first differences {sorted(set(got) ^ set(expected))[:4]}")
    with open(os.path.join(TMP, "train.csv"), "wb") as f:
        f.write(body)

def make_batch_operations(schema, out):
    """The documented S3 Batch Operations invocation of `schema`, its task pointed at the synthetic
    trail object uploaded under the task's key (URL-encoded in the invocation, as S3 sends it)."""
    from urllib.parse import unquote_plus
    ev = event(f"prepare-cloudtrail/s3-batch-operations-{schema}.json")
    task = ev["tasks"][0]
    key = unquote_plus(task["s3Key"])
    if schema == "1.0":
        task["s3BucketArn"] = f"arn:aws:s3:::{TRAIL}"
    else:
        task["s3Bucket"] = TRAIL
    [(bucket, src)] = s3_objects(event("prepare-cloudtrail/s3-put.json"))
    s3.copy_object(Bucket=TRAIL, Key=key, CopySource={"Bucket": bucket, "Key": src})
    with open(out, "w") as f:
        json.dump(ev, f)
    check(True, f"batch operations {schema}: task object s3://{TRAIL}/{key}")

def check_batch_operations(name):
    from urllib.parse import unquote_plus
    schema = name.rsplit("-", 1)[1]
    r = response(name)
    ev = event(f"prepare-cloudtrail/s3-batch-operations-{schema}.json")
    results = r.get("results") or [{}]
    check(r.get("invocationSchemaVersion") == schema and r.get("invocationId") == ev["invocationId"]
          and len(results) == 1 and results[0].get("taskId") == ev["tasks"][0]["taskId"]
          and results[0].get("resultCode") == "Succeeded",
          f"{name}: one result, Succeeded, for the task", r)
    key = unquote_plus(ev["tasks"][0]["s3Key"])
    out_key = "train/cloudtrail/" + key[: -len(".json.gz")] + ".csv"
    body = get(DATA, out_key)
    with open(os.path.join(TMP, "expected-cloudtrail.csv")) as f:
        expected = f.read().splitlines()
    got = sorted(body.decode().splitlines()) if body is not None else None
    check(got == expected, f"{name}: s3://{DATA}/{out_key} has the {len(expected)} expected tuples",
          f"got {None if got is None else len(got)}")

def check_extract(name):
    r = response(name)
    check("errorType" not in r and "unparsed" not in r, f"{name}: invocation succeeded", r)
    ev = event(f"extract-guardduty/{name.split('.', 1)[1]}.json")
    findings = [ev["detail"]] if "detail" in ev else all_findings()[1:]
    for f in findings:
        fid = f["id"]
        body = get(DATA, record_key(fid))
        check(body is not None, f"{name}: finding record s3://{DATA}/{record_key(fid)} exists")
        if body is None:
            continue
        rec = json.loads(body)
        pairs = [(p["entity"], p["ip"]) for p in rec.get("pairs", [])]
        check(pairs == finding_pairs(f) and rec.get("finding_id") == fid and rec.get("count") == f["service"]["count"],
              f"{name}: record {fid[:8]}… names {finding_pairs(f)} (session suffix cut)", rec)
        tkey = f"infer/guardduty/tuples/{ACCOUNT}/{REGION}/{fid}.csv"
        tuples = get(DATA, tkey)
        want = "".join(f"{e},{i}\n" for e, i in finding_pairs(f)).encode()
        check(tuples == want, f"{name}: tuple file {tkey} is {want!r}", tuples)

def check_ipcheck_scores(key, want_pairs, finding_id=None, label=""):
    skey = "scores/" + key + ".jsonl"
    body = get(DATA, skey)
    check(body is not None, f"{label}: s3://{DATA}/{skey} exists")
    if body is None:
        return None
    lines = [json.loads(l) for l in body.decode().splitlines() if l.strip()]
    got = sorted((l["entity"], l["ip"]) for l in lines)
    ok = (got == sorted(want_pairs)
          and all(isinstance(l.get("dot_product"), (int, float)) and math.isfinite(l["dot_product"]) for l in lines)
          and all(l.get("finding_id") == finding_id for l in lines))
    check(ok, f"{label}: {len(lines)} score line(s), one per pair {sorted(want_pairs)}", lines)
    return body

def check_ipcheck(name):
    r = response(name)
    check(r == {"batchItemFailures": []}, f"{name}: batchItemFailures is empty", r)
    ev = event(f"ipcheck/{name.split('.', 1)[1]}.json")
    if name.endswith("sqs-finding-records"):
        by_id = {f["id"]: f for f in all_findings()}
        for _, key in s3_objects(ev):
            fid = key.rsplit("/", 1)[1][: -len(".json")]
            check_ipcheck_scores(key, finding_pairs(by_id[fid]), fid, name)
    elif name.endswith("sqs-security-lake"):
        [(_, key)] = s3_objects(ev)
        with open(os.path.join(TMP, "lake-expected.csv")) as f:
            want = sorted({tuple(row) for row in csv.reader(f) if row})
        check(len(want) > 0, f"{name}: the Security Lake sample has pairs ({want})")
        check_ipcheck_scores(key, want, None, name)
    else:  # s3:TestEvent: acknowledged, nothing written
        before = set(json.load(open(os.path.join(TMP, "keys-before-test-event"))))
        check(set(keys(DATA)) == before, f"{name}: nothing written")

def save_keys(path):
    with open(path, "w") as f:
        json.dump(keys(DATA), f)

def make_partial_batch(path):
    """An SQS batch of two messages: a finding record already scored, and an object that does not exist."""
    ev = event("ipcheck/sqs-finding-records.json")
    good = ev["Records"][0]
    bad = json.loads(json.dumps(good))
    bad["messageId"] = "00000000-0000-4000-8000-0000000000ba"
    body = json.loads(bad["body"])
    body["detail"]["object"]["key"] = record_key("0000000000000000000000000000dead")
    bad["body"] = json.dumps(body)
    with open(path, "w") as f:
        json.dump({"Records": [good, bad]}, f)
    [(_, key)] = s3_objects({"Records": [good]})
    with open(os.path.join(TMP, "scores-before"), "wb") as f:
        f.write(get(DATA, "scores/" + key + ".jsonl") or b"")

def check_partial_batch(name):
    r = response(name)
    want = {"batchItemFailures": [{"itemIdentifier": "00000000-0000-4000-8000-0000000000ba"}]}
    check(r == want, f"{name}: batchItemFailures lists exactly the message naming a missing object", r)
    [(_, key)] = s3_objects({"Records": [event("ipcheck/sqs-finding-records.json")["Records"][0]]})
    before = open(os.path.join(TMP, "scores-before"), "rb").read()
    check(get(DATA, "scores/" + key + ".jsonl") == before, f"{name}: redelivered message rewrote identical scores")

def check_fuse(name):
    r = response(name)
    date = event("fuse/schedule.json")["time"][:10]
    check(r.get("report") == f"s3://{DATA}/reports/{date}/suspicious.json", f"{name}: response names the report", r)
    body, csv_body = get(DATA, f"reports/{date}/suspicious.json"), get(DATA, f"reports/{date}/suspicious.csv")
    check(body is not None and csv_body is not None, f"{name}: reports/{date}/suspicious.json and .csv exist")
    if body is None or csv_body is None:
        return
    rep = json.loads(body)
    rows = {(row["entity"], row["ip"]): row for row in rep["rows"]}
    findings = all_findings()
    for f in findings:
        for pair in finding_pairs(f):
            row = rows.get(pair)
            check(row is not None and f["id"] in row["finding_ids"] and row["score_source"] == "scores"
                  and row["rank"] is not None,
                  f"{name}: {pair} ranked with ipcheck's score (finding {f['id'][:8]}…)", row)
    csv_rows = list(csv.DictReader(io.StringIO(csv_body.decode())))
    check(len(csv_rows) == len(rep["rows"]), f"{name}: CSV has the JSON's {len(rep['rows'])} rows")
    # High severity from an address the role never used outranks a low-severity finding from a usual one.
    hi, lo = rows.get(finding_pairs(findings[0])[0]), rows.get(finding_pairs(findings[1])[0])
    check(hi and lo and hi["rank"] < lo["rank"], f"{name}: the exfiltration finding outranks the benign one",
          [(x or {}).get("rank") for x in (hi, lo)])

def seed_retrain():
    """Two more days of tuples under train/ (the prepared ones split in two), and the serving model saved."""
    lines = open(os.path.join(TMP, "train.csv"), "rb").read().splitlines(keepends=True)
    half = len(lines) // 2
    for i, part in enumerate((lines[:half], lines[half:])):
        s3.put_object(Bucket=DATA, Key=f"train/cloudtrail/local/day-{i}.csv", Body=b"".join(part))
    with open(os.path.join(TMP, "model-before"), "wb") as f:
        f.write(get(DATA, "models/current/model.ipsm"))
    check(len(lines) > 10, f"training tuples split into two objects ({len(lines)} lines)")

def check_retrain(name):
    r = response(name)
    rep = r.get("report", {})
    src = r.get("source", {})
    held = src.get("holdout_objects", 0) + len(src.get("holdout_days", []))
    check(r.get("action") in ("promoted", "not_promoted") and held >= 1,
          f"{name}: trained, judged on held-back objects, decided: {r.get('decision')}", r)
    cand = (rep.get("candidate_path") or "").removeprefix(f"s3://{DATA}/")
    cand_body = get(DATA, cand) if cand else None
    side = cand.rsplit(".", 1)[0] + ".ipsb"
    check(cand_body is not None and get(DATA, cand + ".metrics.json") is not None
          and get(DATA, side) is not None,
          f"{name}: candidate, its baseline sidecar and its metrics kept at {cand}")
    before = open(os.path.join(TMP, "model-before"), "rb").read()
    now = get(DATA, "models/current/model.ipsm")
    if r.get("action") == "promoted":
        check(now == cand_body and get(DATA, "models/previous/model.ipsm") == before
              and get(DATA, "models/current/model.ipsb") == get(DATA, side),
              f"{name}: promoted: serving = candidate (model and sidecar), previous = the replaced model")
    else:
        check(now == before, f"{name}: not promoted: serving model unchanged")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    globals()[cmd.replace("-", "_")](*args)
    sys.exit(1 if failed else 0)
PY

# Runs a li.py command; its ok/FAIL lines are counted.
li() {
  local out rc
  out=$(REPO="$REPO" TMP="$TMP" LAKE_SAMPLE="$LAKE_SAMPLE" python3 "$TMP/li.py" "$@" 2>&1); rc=$?
  [ -n "$out" ] && echo "$out"
  PASSED=$((PASSED + $(grep -c '^ok ' <<<"$out")))
  FAILED=$((FAILED + $(grep -c '^FAIL ' <<<"$out")))
  if [ $rc -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then fail "li.py $1 crashed"; fi
  return $rc
}

# ---------------------------------------------------------------- 1. local S3
MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$TMP/moto.log" 2>&1 &
MOTO_PID=$!
must "moto_server answers on 127.0.0.1:$MOTO_PORT" wait_http "http://127.0.0.1:$MOTO_PORT/" "$START_TIMEOUT"
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=test
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE

# ---------------------------------------------------------------- 2. build once (watch then only starts binaries)
build() {
  timeout "$BUILD_TIMEOUT" cargo build -p ipsight-cli -p prepare-cloudtrail -p extract-guardduty -p ipcheck -p fuse -p scheduled-retrain \
    >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log"; return 1; }
}
must "cargo build of the CLI and the five functions" build
if [ -z "$LAKE_SAMPLE" ]; then
  LAKE_SAMPLE="$TMP/security-lake-cloudtrail.gz.parquet"
  lake_object() { timeout "$BUILD_TIMEOUT" cargo run -q -p ipsight-testkit --example security_lake_object -- "$LAKE_SAMPLE" >"$TMP/lake-object.log" 2>&1; }
  must "Security Lake object written ($LAKE_SAMPLE)" lake_object
fi
ipsight() { timeout "$INVOKE_TIMEOUT" cargo run -q -p ipsight-cli -- "$@" 2>>"$TMP/ipsight.log"; }

# ---------------------------------------------------------------- 3. fixtures
synth() { ipsight synth cloudtrail --out "$TMP/synth" --users 8 --days 2 >"$TMP/synth.json"; }
must "ipsight synth cloudtrail --users 8 --days 2" synth
li setup "$TMP/synth" || finish
lake_pairs() { ipsight prepare ocsf "$LAKE_SAMPLE" -o "$TMP/lake-expected.csv" >/dev/null; }
must "ipsight prepare ocsf of the Security Lake sample (expected pairs)" lake_pairs

# ---------------------------------------------------------------- 4. cargo lambda watch
# One environment for all five functions (template.yaml's values, local buckets). INPUT_BUCKET stays
# unset: ipcheck's INPUT_PREFIX=infer/ would make extract-guardduty's output (infer/guardduty/)
# a self-trigger, which it rightly refuses at cold start.
cat >"$TMP/lambda.env" <<EOF
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_SESSION_TOKEN=test
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
AWS_EC2_METADATA_DISABLED=true
OUTPUT_BUCKET=$DATA_BUCKET
DATA_BUCKET=$DATA_BUCKET
MODEL_URI=s3://$DATA_BUCKET/$MODEL_KEY
SCORES_PREFIX=scores/
ALERTS_PREFIX=alerts/
FINDINGS_PREFIX=infer/guardduty/findings/
REPORTS_PREFIX=reports/
ALERT_MIN_PERCENTILE=99.5
TRAINING_URI=s3://$DATA_BUCKET/train/
LABELS_PREFIX=labels/
TRAIN_THREADS=1
HYPERPARAMETERS='{"num_entity_vectors":1000,"vector_dim":16,"epochs":20,"mini_batch_size":64,"learning_rate":0.01}'
EOF
WATCH_PORT=$(free_port)
setsid cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --ignore-changes --env-file "$TMP/lambda.env" \
  >"$TMP/watch.log" 2>&1 &
WATCH_PID=$!
must "cargo lambda watch answers on 127.0.0.1:$WATCH_PORT" wait_http "http://127.0.0.1:$WATCH_PORT/" "$START_TIMEOUT"

# invoke FUNCTION EVENT_FILE NAME: response JSON in $TMP/out/NAME.json
invoke() {
  local fn=$1 file=$2 name=$3
  if timeout "$INVOKE_TIMEOUT" cargo lambda invoke "$fn" -A 127.0.0.1 -P "$WATCH_PORT" --data-file "$file" \
      --output-format json >"$TMP/out/$name.json" 2>"$TMP/out/$name.err"; then
    pass "cargo lambda invoke $fn --data-file ${file#"$REPO"/}"
  else
    fail "cargo lambda invoke $fn --data-file ${file#"$REPO"/} ($(tail -c 600 "$TMP/out/$name.err" "$TMP/out/$name.json" | tr '\n' ' '))"
  fi
}

# ---------------------------------------------------------------- 5. the chain
for ev in s3-put sqs-s3 eventbridge-object-created; do
  invoke prepare-cloudtrail "$REPO/events/prepare-cloudtrail/$ev.json" "prepare-cloudtrail.$ev"
  li check-prepare "prepare-cloudtrail.$ev"
done

# Backfill: S3 Batch Operations invoke the same function once per task (schema 1.0 and 2.0).
for schema in 1.0 2.0; do
  li make-batch-operations "$schema" "$TMP/s3-batch-operations-$schema.json"
  invoke prepare-cloudtrail "$TMP/s3-batch-operations-$schema.json" "prepare-cloudtrail.s3-batch-operations-$schema"
  li check-batch-operations "prepare-cloudtrail.s3-batch-operations-$schema"
done

# Train on the preparer's output (tiny settings) and put the model where ipcheck's MODEL_URI points.
train() {
  [ -s "$TMP/train.csv" ] || return 1
  ipsight train --train "$TMP/train.csv" --model "$TMP/model.ipsm" --num-entity-vectors 1000 --vector-dim 16 \
    --epochs 20 --mini-batch-size 64 --learning-rate 0.01 --threads 1 --seed 7 >"$TMP/train.log" 2>&1 \
    || { tail -20 "$TMP/train.log"; return 1; }
  python3 -c 'import boto3,sys; boto3.client("s3").upload_file(sys.argv[1], sys.argv[2], sys.argv[3])' \
    "$TMP/model.ipsm" "$DATA_BUCKET" "$MODEL_KEY"
}
must "ipsight train on the prepared tuples, model uploaded to s3://$DATA_BUCKET/$MODEL_KEY" train

for ev in eventbridge-finding s3-export; do
  invoke extract-guardduty "$REPO/events/extract-guardduty/$ev.json" "extract-guardduty.$ev"
  li check-extract "extract-guardduty.$ev"
done

for ev in sqs-finding-records sqs-security-lake; do
  invoke ipcheck "$REPO/events/ipcheck/$ev.json" "ipcheck.$ev"
  li check-ipcheck "ipcheck.$ev"
done
li save-keys "$TMP/keys-before-test-event"
invoke ipcheck "$REPO/events/ipcheck/sqs-s3-test-event.json" "ipcheck.sqs-s3-test-event"
li check-ipcheck "ipcheck.sqs-s3-test-event"
# Partial batch failure: a redelivered message and one naming a missing object.
li make-partial-batch "$TMP/partial-batch.json"
invoke ipcheck "$TMP/partial-batch.json" "ipcheck.partial-batch"
li check-partial-batch "ipcheck.partial-batch"

invoke fuse "$REPO/events/fuse/schedule.json" "fuse.schedule"
li check-fuse "fuse.schedule"

# Last: the scheduled retrain replaces the model the others used.
li seed-retrain
invoke scheduled-retrain "$REPO/events/scheduled-retrain/schedule.json" "scheduled-retrain.schedule"
li check-retrain "scheduled-retrain.schedule"

# Every event file was invoked.
n_events=$(find "$REPO/events" -name '*.json' | wc -l)
n_invoked=$(find "$TMP/out" -name '*.json' ! -name 'ipcheck.partial-batch.json' | wc -l)
if [ "$n_events" -eq "$n_invoked" ]; then pass "every event file in events/ was invoked ($n_events)"; else fail "events invoked: $n_invoked of $n_events"; fi

finish
