"""A real S3-protocol server for the integration tests: moto on 127.0.0.1, in memory.

    python s3_server.py [--bucket NAME --upload DIR --prefix PREFIX]...

Starts moto's threaded server on a free loopback port, creates each bucket and uploads every
file under DIR to s3://NAME/PREFIX/<relative path>, then prints `READY <port>` on stdout and
serves until stdin is closed (the test drops its handle) or the process is killed.
"""

import argparse
import os
import sys

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--upload", action="append", default=[])
    parser.add_argument("--prefix", action="append", default=[])
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    for bucket, folder, prefix in zip(args.bucket, args.upload, args.prefix):
        client.create_bucket(Bucket=bucket)
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(root, name)
                key = "/".join(p for p in [prefix.strip("/"), os.path.relpath(path, folder)] if p)
                client.upload_file(path, bucket, key)
    print(f"READY {port}", flush=True)
    # Serve until the test closes stdin (or kills the process).
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
