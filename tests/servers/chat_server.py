"""A Slack-compatible incoming-webhook receiver on loopback for abreport's chat delivery tests.

Answers every POST with the status written in the file given with --status-file (200 while
the file is missing), so a test can make it fail and recover without restarting it; the first
--accept-first requests are answered 200 whatever the file says (a failure half-way). Stores
each request as `<n>.json` in the folder given with --store: its path, content type, body and
the status it was answered with (bodies answered 2xx are the posts that were delivered).
Prints `READY <port>` on stdout once it accepts connections. Runs until killed. Logs nothing
of a request: its path is the webhook's secret.

    python chat_server.py --store DIR [--status-file FILE] [--accept-first N] [--port 0]
"""

import argparse
import http.server
import json
import os
import sys
import threading


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--status-file")
    parser.add_argument("--accept-first", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.store, exist_ok=True)
    lock = threading.Lock()
    count = [0]

    def status():
        if args.status_file and os.path.exists(args.status_file):
            with open(args.status_file) as f:
                return int(f.read().strip())
        return 200

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            with lock:
                count[0] += 1
                n = count[0]
            code = 200 if n <= args.accept_first else status()
            base = os.path.join(args.store, f"{n:03d}")
            record = {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": body,
                "status": code,
            }
            # Written under a temporary name and renamed, so a test never reads half a record.
            with open(base + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(base + ".tmp", base + ".json")
            reply = b"ok" if code < 300 else b"internal_error"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
