"""`groundsynth <command>` (or `python -m groundsynth <command>`): the backend's command line.

Each command lives in groundsynth/cli/<name>.py and exposes
`register(subparsers)`, which adds its sub-parser and sets `func`
(args -> exit code). Commands are discovered, so adding one touches one file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from groundsynth import __version__
from groundsynth.request.errors import GroundSynthError


def build_parser() -> argparse.ArgumentParser:
    from groundsynth import cli as commands

    parser = argparse.ArgumentParser(prog="groundsynth", description="GroundSynth backend")
    parser.add_argument("--version", action="version", version=f"groundsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_") and mod.name != "main":
            importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GroundSynthError as exc:
        print(f"error ({exc.code.name}): {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
