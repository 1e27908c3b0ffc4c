"""Azurite's Blob service (an Azure Storage emulator) on loopback for abreport's tests.

    python azure_server.py --azurite PATH [--container NAME ...] [--upload CONTAINER/PREFIX=DIR ...]

Starts `azurite-blob` (PATH, installed by tests/run.sh with npm) on a free loopback port, in
memory and without telemetry, creates the containers named with --container in the well-known
development account `devstoreaccount1`, uploads every file under DIR to
az://CONTAINER/PREFIX/<relative path> for each --upload, then prints `READY <port>` on stdout.
Runs until killed; Azurite dies with it.
"""

import argparse
import base64
import ctypes
import datetime
import hashlib
import hmac
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every installation; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
API_VERSION = "2021-08-06"


def die_with_parent() -> None:
    # PR_SET_PDEATHSIG: Azurite gets SIGTERM when this script dies, even by SIGKILL.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)


def request(port: int, method: str, path: str, query: dict, body: bytes = b"", headers=None) -> None:
    """A request signed with the account key (Shared Key), as any Azure client sends it."""
    headers = dict(headers or {})
    # Always named, so urllib adds no Content-Type of its own that the signature left out.
    headers.setdefault("Content-Type", "application/octet-stream")
    headers["x-ms-date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    headers["x-ms-version"] = API_VERSION
    length = str(len(body)) if body else ""
    content_type = headers.get("Content-Type", "")
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
    resource = f"/{ACCOUNT}/{ACCOUNT}/{path}"
    resource += "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
    to_sign = "\n".join([method, "", "", length, "", content_type, "", "", "", "", "", ""]) + "\n"
    to_sign += canonical_headers + resource
    signature = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest())
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{signature.decode()}"
    url = f"http://127.0.0.1:{port}/{ACCOUNT}/{urllib.parse.quote(path, safe='/=')}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as response:
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--azurite", required=True)
    parser.add_argument("--container", action="append", default=[])
    parser.add_argument("--upload", action="append", default=[], metavar="CONTAINER/PREFIX=DIR")
    args = parser.parse_args()

    azurite = subprocess.Popen(
        [args.azurite, "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
         "--disableTelemetry", "--skipApiVersionCheck"],
        stdout=subprocess.PIPE, stderr=sys.stderr, text=True, preexec_fn=die_with_parent,
    )
    port = None
    for line in azurite.stdout:
        sys.stderr.write(line)
        found = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
            break
    if port is None:
        sys.exit("azurite exited before it listened")
    # Keep draining Azurite's output so it never blocks on a full pipe.
    threading.Thread(target=lambda: [sys.stderr.write(l) for l in azurite.stdout], daemon=True).start()

    for container in args.container:
        request(port, "PUT", container, {"restype": "container"})
    for upload in args.upload:
        target, folder = upload.split("=", 1)
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as handle:
                    body = handle.read()
                headers = {"x-ms-blob-type": "BlockBlob"}
                request(port, "PUT", f"{target.strip('/')}/{relative}", {}, body, headers)
    print(f"READY {port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        azurite.wait()
    finally:
        azurite.terminate()


if __name__ == "__main__":
    main()
