"""`paymaster report [--config fleet.yaml | --ledger FILE] [--since D] [--until D] [--by …] [--format …]`."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import orjson

from .config import ConfigError, load
from .report import Caps, build, open_ledger, print_report, to_csv, to_text


class _NoSecrets(Mapping[str, str]):
    """An environment in which every variable is set: the report reads no key, so none is needed to load
    fleet.yaml (the provider and agent keys it names are never used)."""

    def __getitem__(self, key: str) -> str:
        return "unused-by-report"

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.ledger:
            caps, ledger = Caps(), args.ledger
        else:
            config = load(args.config, env=_NoSecrets())
            if config.shared is not None:  # a Postgres ledger: today's table (the full report reads SQLite)
                print_report(config)
                return 0
            caps, ledger = Caps.of(config), config.ledger
        for name in ("since", "until"):
            v = getattr(args, name)
            if v is not None:
                date.fromisoformat(v)
        now = datetime.fromisoformat(args.at).timestamp() if args.at else None
        conn = open_ledger(ledger)
    except ConfigError as e:
        print(f"paymaster: bad config: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"paymaster report: {e}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as e:
        print(f"paymaster report: cannot read the ledger: {e}", file=sys.stderr)
        return 2
    try:
        report = build(conn, caps, args.since, args.until, [d.strip() for d in args.by.split(",")], now)
    except ValueError as e:
        print(f"paymaster report: {e}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:
        print(f"paymaster report: cannot read the ledger {ledger}: {e}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    if args.format == "json":
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    elif args.format == "csv":
        text = to_csv(report)
    else:
        text = to_text(report) + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `paymaster report | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
    return 0
