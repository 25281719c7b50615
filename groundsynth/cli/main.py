"""`groundsynth <command>` (or `python -m groundsynth <command>`): the backend's command line.

Each command lives in groundsynth/cli/<name>.py and exposes
`register(subparsers)`, which adds its sub-parser and sets `func`
(args -> exit code). Commands are discovered, so adding one touches one file.

Command-line mistakes are reported like every other error,
`error (INVALID_ARGUMENT): tile_size: expected an integer, got 'abc'` (exit 2).
A value starting with a minus after an option that takes one
(`--aoi -75.7,37.6,-75.6,37.7`, as every western-hemisphere user types it)
is taken as that option's value; `--aoi=-75.7,...` works as well.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from typing import NoReturn

from groundsynth import __version__
from groundsynth.request.errors import GroundSynthError

_TYPE_NAMES = {"int": "an integer", "float": "a number", "Path": "a path"}
_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d)")


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format (sub-parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        m = re.match(r"argument (?:-\w/)?--([\w-]+): invalid (\w+) value: (.*)$", message)
        if m:
            field, what, value = m.group(1).replace("-", "_"), _TYPE_NAMES.get(m.group(2), m.group(2)), m.group(3)
            text = f"{field}: expected {what}, got {value}"
        else:
            m = re.match(r"argument (?:-\w/)?(?:--)?([\w-]+): (.*)$", message)
            text = f"{m.group(1).replace('-', '_').lower()}: {m.group(2)}" if m else f"arguments: {message}"
        print(f"error (INVALID_ARGUMENT): {text} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Long options (of the parser and all its sub-parsers) that take one value."""
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _value_options(sub)
        elif action.nargs is None and action.option_strings:
            out |= {o for o in action.option_strings if o.startswith("--")}
    return out


def join_negative_values(argv: list[str], options: set[str]) -> list[str]:
    """["--aoi", "-75.7,37.6,..."] -> ["--aoi=-75.7,37.6,..."] for options that take a value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    from groundsynth import cli as commands

    parser = Parser(prog="groundsynth", description="GroundSynth backend")
    parser.add_argument("--version", action="version", version=f"groundsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_") and mod.name != "main":
            importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(join_negative_values(argv, _value_options(parser)))
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
