"""Example order service: a small JSON API on http.server.

Run `app.py PORT DATA_DIR` to serve, or `app.py --self-test PORT DATA_DIR` to start the server,
send it one order, and exit; the tests run the self-test under the example policy.
"""

import json
import os
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(data_dir):
    class OrderHandler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            order = json.loads(self.rfile.read(length))
            path = os.path.join(data_dir, f"order-{order['id']}.json")
            with open(path, "w") as handle:
                json.dump(order, handle)
            body = json.dumps({"stored": path}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    return OrderHandler


def main(argv):
    self_test = argv[:1] == ["--self-test"]
    port, data_dir = (int(argv[-2]), argv[-1])
    os.makedirs(data_dir, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(data_dir))
    if not self_test:
        server.serve_forever()
        return 0

    threading.Thread(target=server.serve_forever, daemon=True).start()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/orders",
        data=json.dumps({"id": 42, "item": "widget"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        print("python-service stored", json.load(response)["stored"])
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
