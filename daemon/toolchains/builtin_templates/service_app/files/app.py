"""HTTP service: GET / returns app info as JSON, GET /health returns "ok".

Serves on 127.0.0.1 with the standard library's ThreadingHTTPServer, logs
each request to stdout and shuts down cleanly on SIGTERM/SIGINT. App metadata
(name, display name, version) is read from kitapp.toml next to this file.
"""

import argparse
import json
import signal
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def load_metadata(path=APP_DIR / "kitapp.toml"):
    """Return {"name", "display_name", "version"} from kitapp.toml."""
    try:
        with open(path, "rb") as f:
            app = tomllib.load(f).get("app", {})
    except (OSError, tomllib.TOMLDecodeError):
        app = {}
    return {
        "name": str(app.get("name", APP_DIR.name)),
        "display_name": str(app.get("display_name", APP_DIR.name)),
        "version": str(app.get("version", "0.0.0")),
    }


def info(meta):
    return {"app": meta["name"], "display_name": meta["display_name"], "version": meta["version"]}


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(description="HTTP service created by kitplay.")
    parser.add_argument("--port", type=_port, default=0, metavar="N",
                        help="TCP port on 127.0.0.1 (default 0: pick a free port)")
    parser.add_argument("--headless", action="store_true",
                        help="accepted for compatibility; the service never needs a display")
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


def make_handler(meta):
    class Handler(BaseHTTPRequestHandler):
        server_version = "kitplay-service/" + meta["version"]

        def _send(self, status, body, content_type):
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, json.dumps(info(meta)) + "\n", "application/json")
            elif path == "/health":
                self._send(200, "ok\n", "text/plain; charset=utf-8")
            else:
                self._send(404, json.dumps({"error": "not found", "path": path}) + "\n",
                           "application/json")

        do_HEAD = do_GET

        def log_message(self, format, *args):
            # Default logging goes to stderr; send it to stdout, unbuffered.
            print(f"{self.address_string()} - {format % args}", flush=True)

    return Handler


def make_server(port=0, meta=None):
    """Bind (but do not start) the server; port 0 picks a free port."""
    meta = load_metadata() if meta is None else meta
    return ThreadingHTTPServer((HOST, port), make_handler(meta))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    meta = load_metadata()
    stop = threading.Event()
    received = []

    def on_signal(signum, frame):
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    try:
        server = make_server(args.port, meta)
        port = server.server_address[1]
        print(f"{meta['display_name']} {meta['version']} ({meta['name']})", flush=True)
        print(f"listening on http://{HOST}:{port}", flush=True)
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        while not stop.wait(0.5):
            if not thread.is_alive():  # serve_forever died unexpectedly
                print("server thread stopped unexpectedly", flush=True)
                server.server_close()
                return 1
        print(f"received {received[0] if received else 'stop'}, shutting down", flush=True)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        print("stopped", flush=True)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
