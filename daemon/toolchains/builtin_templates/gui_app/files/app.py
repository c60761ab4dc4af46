"""Tk GUI app: a window with a greeting and a Quit button.

tkinter is imported only when a window is actually opened, so the app (and
its tests) also run in --headless mode where tkinter is not installed.
App metadata (name, display name, version) is read from kitapp.toml next to
this file.
"""

import argparse
import signal
import sys
import time
import tomllib
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
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


def greeting(meta):
    return f"Hello from {meta['display_name']} {meta['version']}"


def _non_negative_float(text):
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(description="Tk GUI app created by kitplay.")
    parser.add_argument("--exit-after", type=_non_negative_float, default=None, metavar="S",
                        help="quit after S seconds")
    parser.add_argument("--headless", action="store_true",
                        help="do not open a window (tkinter is not imported)")
    parser.add_argument("--exit-code", type=int, default=0, metavar="K",
                        help="exit status when the app quits normally (default 0)")
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


class AppError(Exception):
    """A problem reported to the user as one line, exit status 1."""


class Stopper:
    """Remembers why the app stopped; installed as the SIGTERM/SIGINT handler."""

    def __init__(self):
        self.signal_name = None
        self.callback = None  # set by the GUI loop to close the window

    def __call__(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        if self.callback is not None:
            self.callback()

    @property
    def signalled(self):
        return self.signal_name is not None


def run_headless(args, meta, stopper, poll=0.05):
    print(greeting(meta), flush=True)
    print("running headless", flush=True)
    deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
    while not stopper.signalled:
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(poll)


def run_gui(args, meta, stopper):
    try:
        import tkinter as tk  # lazy: only needed when a window is shown
    except ImportError as exc:
        raise AppError(f"tkinter is not available ({exc}); install Tk support "
                       "for this Python (e.g. Debian package python3-tk) or run with --headless")
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        raise AppError(f"cannot open a window: {exc}; run on a display or with --headless")
    root.title(meta["display_name"])
    root.minsize(320, 120)
    frame = tk.Frame(root, padx=24, pady=16)
    frame.pack(fill="both", expand=True)
    tk.Label(frame, text=greeting(meta), font=("TkDefaultFont", 14)).pack(pady=(0, 12))
    tk.Button(frame, text="Quit", command=root.quit).pack()
    root.protocol("WM_DELETE_WINDOW", root.quit)

    shown = False

    def on_map(event):
        nonlocal shown
        if event.widget is root and not shown:
            shown = True
            print("window shown", flush=True)

    def keep_alive():
        # Regular wake-ups so Python signal handlers run promptly during
        # mainloop; also catches a signal that arrived before mainloop started.
        if stopper.signalled:
            root.quit()
        else:
            root.after(100, keep_alive)

    root.bind("<Map>", on_map)
    stopper.callback = root.quit
    if args.exit_after is not None:
        root.after(int(args.exit_after * 1000), root.quit)
    root.after(0, keep_alive)  # first check runs inside mainloop (quit() before it is a no-op)
    print(greeting(meta), flush=True)
    try:
        root.mainloop()
    finally:
        stopper.callback = None
        root.destroy()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    meta = load_metadata()
    stopper = Stopper()
    previous = {s: signal.signal(s, stopper) for s in SIGNALS}
    try:
        if args.headless:
            run_headless(args, meta, stopper)
        else:
            run_gui(args, meta, stopper)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopper.signalled:
        print(f"received {stopper.signal_name}, exiting", flush=True)
        return 0
    print("quitting", flush=True)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
