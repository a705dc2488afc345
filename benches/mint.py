#!/usr/bin/env python3
"""Mint N single-use docgate links for the download benchmark, without docgate's help.

Each link is what docgate itself would mint (src/token.rs, src/store/shared.rs):

- a JWT signed with HS256 and the known DOCGATE_TOKEN_SECRET; header
  {"alg":"HS256","typ":"JWT","kid":<hex of the first 8 bytes of SHA-256(secret)>}, claims
  {"jti","doc","iat","exp","iss":"docgate"}; jti = 18 random bytes, base64url (24 characters);
- its Redis record: HSET <prefix>token:{<jti>} doc <doc> started 0 attempts <n>, PEXPIRE <ttl ms>.

The records go to Redis as one raw RESP stream through `redis-cli --pipe` (or to a file with
--resp-out); the links' paths (`/d/<token>`, one per line) go to --out, for benches/wrk-links.lua.

    python3 benches/mint.py --secret "$SECRET" --doc d10m --count 5000 --out /tmp/links.txt \
        --redis-port 6399
"""

import argparse
import base64
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
    for _ in range(args.count):
        jti = b64url(os.urandom(18)).decode()
        claims = {"jti": jti, "doc": args.doc, "iat": now, "exp": now + args.ttl, "iss": "docgate"}
        signing_input = header + b"." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        m = mac.copy()
        m.update(signing_input)
        token = signing_input + b"." + b64url(m.digest())
        links.append(b"/d/" + token + b"\n")
        key = args.prefix.encode() + b"token:{" + jti.encode() + b"}"
        stream.append(resp(b"HSET", key, b"doc", doc, b"started", b"0", b"attempts", attempts))
        stream.append(resp(b"PEXPIRE", key, ttl_ms))
    data = b"".join(stream)

    if args.resp_out:
        with open(args.resp_out, "wb") as f:
            f.write(data)
    else:
        cmd = [args.redis_cli, "-h", args.redis_host, "-p", str(args.redis_port), "--pipe"]
        done = subprocess.run(cmd, input=data, capture_output=True)
        report = done.stdout.decode(errors="replace")
        # redis-cli --pipe ends with "errors: E, replies: R".
        if done.returncode != 0 or "errors: 0," not in report:
            sys.stderr.write(report + done.stderr.decode(errors="replace"))
            return 1
    with open(args.out, "wb") as f:
        f.writelines(links)
    return 0


if __name__ == "__main__":
    sys.exit(main())
