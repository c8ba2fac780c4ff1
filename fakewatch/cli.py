"""The ``fakewatch`` console script: one parser, subcommands registered from a table.

Each row names a module with ``register(subparsers)``; the module must import without torch/tensorrt (heavy
imports happen inside the command's function), so ``fakewatch --help`` is instant on a Jetson.
A subcommand appears here only once it works.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# in the order of the workflow: train -> export -> engine -> watch (probe sources first) -> bench
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("train", "fakewatch.training.cli"),
    ("eval", "fakewatch.training.eval_cli"),
    ("export", "fakewatch.export.cli"),
    ("engine", "fakewatch.export.engine_cli"),
    ("watch", "fakewatch.runtime.watch_cli"),
    ("serve", "fakewatch.runtime.serve_cli"),
    ("probe", "fakewatch.streams.cli"),
    ("bench", "fakewatch.benchmarks.cli"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fakewatch",
        description="Real-time deepfake stream detector: train, export, build engines, watch streams, benchmark.")
    parser.add_argument("--version", action="version", version=f"fakewatch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module in SUBCOMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("fakewatch")
    except Exception:
        return "unknown"


class UserError(Exception):
    """An error caused by input (file, URL, flag); printed as one line without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserError, FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        # One clear line for input problems; --debug shows the traceback.
        if getattr(args, "debug", False):
            raise
        print(f"fakewatch {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
