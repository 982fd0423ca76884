#!/usr/bin/env python3
# Usage: gen_pairs.py N ENTITIES OUT.csv
# Deterministic pairs for the training scale figures: ENTITIES principals, each with a home /16 and
# a few usual /24s; N pairs round-robin over entities (so every entity appears).
import sys, random
n, entities, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(7)
with open(out, 'w', buffering=1 << 20) as f:
    buf = []
    for i in range(n):
        e = i % entities
        h = (e * 2654435761) & 0xffffffff
        a, b = 11 + (h >> 24) % 200, (h >> 16) & 255
        c = ((h >> 8) & 255) ^ rng.randrange(3)
        buf.append(f"AIDA{e:09d},{a}.{b}.{c}.{rng.randrange(1, 255)}\n")
        if len(buf) == 100000:
            f.write(''.join(buf)); buf.clear()
    f.write(''.join(buf))
