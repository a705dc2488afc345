#!/usr/bin/env python3
"""Mint N single-use docgate links for the download benchmark, without docgate's help.

Each link is what docgate itself would mint (src/token.rs, src/store/shared.rs):

- a JWT signed with HS256 and the known DOCGATE_TOKEN_SECRET; header
  {"alg":"HS256","typ":"JWT","kid":<hex of the first 8 bytes of SHA-256(secret)>}, claims
  {"jti","doc","iat","exp","iss":"docgate"}; jti = 18 random bytes, base64url (24 characters);
- its Redis record: HSET <prefix>token:{<jti>} doc <doc> started 0 attempts <n>, PEXPIRE <ttl ms>.

The records go to Redis as one raw RESP stream through `redis-cli --pipe` (or to a file with
--resp-out); the links' paths (`/d/<token>`, one per line) go to --out, for benches/wrk-links.lua.
With --cluster, --redis-port names one node of a Redis Cluster: each record goes to the master
serving its key's slot (CRC16 of the `{<jti>}` hash tag, as `CLUSTER NODES` maps it), one stream
per master.

    python3 benches/mint.py --secret "$SECRET" --doc d10m --count 5000 --out /tmp/links.txt \
        --redis-port 6399
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def resp(*parts: bytes) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


def key_slot(key: bytes) -> int:
    """Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, or of the key, mod 16384."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return binascii.crc_hqx(key, 0) % 16384


def cluster_masters(cli: str, host: str, port: int) -> list:
    """(host, port, [(first, last), ...]) of every master serving slots, from CLUSTER NODES."""
    out = subprocess.run([cli, "-h", host, "-p", str(port), "cluster", "nodes"],
                         capture_output=True, check=True, text=True).stdout
    masters = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2].split(","):
            continue
        addr = fields[1].split("@")[0]
        m_host, m_port = addr.rsplit(":", 1)
        ranges = []
        for r in fields[8:]:
            if r.startswith("["):
                continue  # a slot being migrated: not in the stable map
            first, _, last = r.partition("-")
            ranges.append((int(first), int(last or first)))
        if ranges:
            masters.append((m_host or host, int(m_port), ranges))
    return masters


def pipe(cli: str, host: str, port: int, data: bytes) -> bool:
    """Sends a RESP stream through `redis-cli --pipe`; False (and its report) on any error."""
    cmd = [cli, "-h", host, "-p", str(port), "--pipe"]
    done = subprocess.run(cmd, input=data, capture_output=True)
    report = done.stdout.decode(errors="replace")
    # redis-cli --pipe ends with "errors: E, replies: R".
    if done.returncode != 0 or "errors: 0," not in report:
        sys.stderr.write(f"{host}:{port}: " + report + done.stderr.decode(errors="replace"))
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secret", default=os.environ.get("DOCGATE_TOKEN_SECRET"),
                    help="the HMAC key (default: $DOCGATE_TOKEN_SECRET)")
    ap.add_argument("--doc", required=True, help="catalog id the links grant")
    ap.add_argument("--count", type=int, required=True, help="how many links")
    ap.add_argument("--out", required=True, help="file to write the link paths to")
    ap.add_argument("--ttl", type=int, default=3600, help="link lifetime, seconds")
    ap.add_argument("--attempts", type=int, default=1, help="download starts allowed per link")
    ap.add_argument("--prefix", default="docgate:", help="DOCGATE_REDIS_PREFIX")
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--redis-cli", default="redis-cli")
    ap.add_argument("--resp-out", help="write the RESP stream here instead of piping it to Redis")
    ap.add_argument("--cluster", action="store_true",
                    help="--redis-port is a Redis Cluster node: write each record to its master")
    args = ap.parse_args()
    if not args.secret or len(args.secret.encode()) < 32:
        ap.error("--secret (or DOCGATE_TOKEN_SECRET) of at least 32 bytes is required")

    secret = args.secret.encode()
    kid = hashlib.sha256(secret).digest()[:8].hex()
    header = b64url(json.dumps({"typ": "JWT", "alg": "HS256", "kid": kid},
                               separators=(",", ":")).encode())
    now = int(time.time())
    ttl_ms = str(args.ttl * 1000).encode()
    doc = args.doc.encode()
    attempts = str(args.attempts).encode()
    mac = hmac.new(secret, digestmod=hashlib.sha256)

    links = []
    stream = []
    slots = []
    for _ in range(args.count):
        jti = b64url(os.urandom(18)).decode()
        claims = {"jti": jti, "doc": args.doc, "iat": now, "exp": now + args.ttl, "iss": "docgate"}
        signing_input = header + b"." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        m = mac.copy()
        m.update(signing_input)
        token = signing_input + b"." + b64url(m.digest())
        links.append(b"/d/" + token + b"\n")
        key = args.prefix.encode() + b"token:{" + jti.encode() + b"}"
        stream.append(resp(b"HSET", key, b"doc", doc, b"started", b"0", b"attempts", attempts)
                      + resp(b"PEXPIRE", key, ttl_ms))
        slots.append(key_slot(key))

    if args.resp_out:
        with open(args.resp_out, "wb") as f:
            f.write(b"".join(stream))
    elif args.cluster:
        masters = cluster_masters(args.redis_cli, args.redis_host, args.redis_port)
        owner = {}
        for i, (_, _, ranges) in enumerate(masters):
            for first, last in ranges:
                owner.update((slot, i) for slot in range(first, last + 1))
        per_master = [[] for _ in masters]
        for record, slot in zip(stream, slots):
            if slot not in owner:
                sys.stderr.write(f"slot {slot} has no master: is the cluster's state ok?\n")
                return 1
            per_master[owner[slot]].append(record)
        for (host, port, _), records in zip(masters, per_master):
            if records and not pipe(args.redis_cli, host, port, b"".join(records)):
                return 1
    elif not pipe(args.redis_cli, args.redis_host, args.redis_port, b"".join(stream)):
        return 1
    with open(args.out, "wb") as f:
        f.writelines(links)
    return 0


if __name__ == "__main__":
    sys.exit(main())
