#!/usr/bin/env python3
"""The preparer's rules in plain Python (json.load per file), as a throughput baseline.

Usage: prepare_baseline.py DIR > tuples.csv   (prints MB/s of uncompressed JSON to stderr)
Same entity/IP rules as ipsight (ARCHITECTURE.md), single process.
"""
import gzip, ipaddress, json, os, sys, time

def tuples(rec):
    ui = rec.get("userIdentity") or {}
    pid = ui.get("principalId")
    t = ui.get("type")
    if not pid:
        if t == "Root" and ui.get("accountId"):
            pid = ui["accountId"]
        else:
            return None
    elif t != "FederatedUser" and (t == "AssumedRole" or pid.startswith("AROA")):
        pid = pid.split(":", 1)[0]
    ip = rec.get("sourceIPAddress")
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version != 4:
        return None
    return pid, str(addr)

def main():
    root = sys.argv[1]
    nbytes = 0
    out = sys.stdout
    start = time.time()
    for dirpath, _, files in os.walk(root):
        if "/CloudTrail/" not in dirpath + "/":
            continue
        for f in sorted(files):
            if not f.endswith(".json.gz") or "_CloudTrail_" not in f:
                continue
            with gzip.open(os.path.join(dirpath, f), "rb") as fh:
                data = fh.read()
            nbytes += len(data)
            for rec in json.loads(data).get("Records", []):
                t = tuples(rec)
                if t:
                    out.write(f"{t[0]},{t[1]}\n")
    secs = time.time() - start
    print(f'{{"uncompressed_bytes": {nbytes}, "seconds": {secs:.3f}, "mb_per_s": {nbytes/1e6/secs:.1f}}}', file=sys.stderr)

main()
