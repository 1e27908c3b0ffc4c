"""A real S3-protocol server on loopback for abreport's tests (moto's server mode).

    python s3_server.py [--port 0] [--bucket NAME ...] [--upload BUCKET/PREFIX=DIR ...]

Creates the buckets named with --bucket, uploads every file under DIR to
s3://BUCKET/PREFIX/<relative path> for each --upload, then prints `READY <port>` on stdout.
Keeps everything in memory; runs until killed.
"""

import argparse
import os
import sys
import threading
import urllib.parse
import urllib.request

from moto.server import ThreadedMotoServer


def put(port: int, path: str, body: bytes = b"") -> None:
    # Plain unsigned PUTs: moto's default mode accepts them, and they keep this script free of
    # any client configuration that could reach beyond loopback.
    url = f"http://127.0.0.1:{port}/{urllib.parse.quote(path, safe='/=')}"
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--upload", action="append", default=[], metavar="BUCKET/PREFIX=DIR")
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    for bucket in args.bucket:
        put(port, bucket)
    for upload in args.upload:
        target, folder = upload.split("=", 1)
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as handle:
                    put(port, f"{target.strip('/')}/{relative}", handle.read())
    print(f"READY {port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    sys.exit(main())
