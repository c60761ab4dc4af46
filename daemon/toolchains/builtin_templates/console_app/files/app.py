"""Console app: prints a greeting, echoes its arguments, prints numbered lines.

App metadata (name, display name, version) is read from kitapp.toml next to
this file, so it always matches what the app was created with.
"""

import argparse
import shlex
import signal
import sys
import time
import tomllib
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent


class Terminated(Exception):
    """Raised from the signal handler when SIGTERM (or SIGINT) arrives."""


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


def greeting(meta):
    return f"Hello from {meta['display_name']} {meta['version']}"


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(description="Console app created by kitplay.")
    parser.add_argument("--lines", type=_non_negative_int, default=0, metavar="N",
                        help="print N numbered lines (default 0)")
    parser.add_argument("--sleep", type=_non_negative_float, default=0.0, metavar="S",
                        help="seconds to wait between lines (default 0)")
    parser.add_argument("--forever", action="store_true",
                        help="after the lines, print 'tick N' every second until stopped")
    parser.add_argument("--exit-code", type=int, default=0, metavar="K",
                        help="exit status at the end (default 0)")
    parser.add_argument("--headless", action="store_true",
                        help="accepted for compatibility; ignored")
    parser.add_argument("extra", nargs="*", help="extra arguments, echoed back")
    return parser


def parse_args(argv):
    return build_parser().parse_intermixed_args(argv)


def numbered_lines(count):
    return [f"line {i}" for i in range(1, count + 1)]


def _on_signal(signum, frame):
    raise Terminated(signal.Signals(signum).name)


def echo_line(argv):
    return f"args: {shlex.join(argv)}" if argv else "args: (none)"


def run(args, meta, argv=()):
    print(greeting(meta), flush=True)
    print(echo_line(list(argv)), flush=True)
    for i, line in enumerate(numbered_lines(args.lines)):
        if i and args.sleep:
            time.sleep(args.sleep)
        print(line, flush=True)
    if args.forever:
        tick = 0
        while True:
            tick += 1
            print(f"tick {tick}", flush=True)
            time.sleep(1.0)
    return args.exit_code


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    meta = load_metadata()
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run(args, meta, argv)
    except Terminated as exc:
        print(f"received {exc}, exiting", flush=True)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
