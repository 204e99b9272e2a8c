"""paymaster serve | sim | demo | keys | report | ledger check | doctor | config check | config schema | batch"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from .config import Config, ConfigError, hash_key, json_schema, load
from .store.errors import LedgerError


def parser() -> argparse.ArgumentParser:
    """Every command and flag (`sim`'s own flags: paymaster.sim.runner.parser)."""
    p = argparse.ArgumentParser(prog="paymaster", description="A cost-control gateway for fleets of LLM agents.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", default="fleet.yaml", help="fleet.yaml (default: ./fleet.yaml)")
    s.add_argument("--host", help="override listen.host")
    s.add_argument("--port", type=int, help="override listen.port")

    sub.add_parser("sim", help="run the provider simulator (Anthropic- and OpenAI-compatible)", add_help=False)

    d = sub.add_parser(
        "demo",
        help="the five-agent reference pipeline before and after the levers, then the gateway up until Ctrl-C",
    )
    d.add_argument("--tasks", type=int, default=6, help="pipeline runs (default 6)")
    d.add_argument("--exit", action="store_true", help="stop after printing (for CI) instead of serving until Ctrl-C")

    k = sub.add_parser("keys", help="make agent / admin keys; create, rotate, revoke on a running gateway")
    k.add_argument("action", choices=["new", "hash", "create", "rotate", "revoke", "list"])
    k.add_argument("key", nargs="?", help="hash: the key; create / rotate: the agent; revoke: the key id")
    k.add_argument("--grace", type=float, help="rotate: seconds the old keys keep working (admin.key_grace_s)")
    _gateway_args(k)

    a = sub.add_parser("agents", help="add, set, disable or enable an agent on a running gateway")
    a.add_argument("action", choices=["add", "set", "disable", "enable"])
    a.add_argument("name")
    a.add_argument("--model", help="default model")
    a.add_argument("--models", help="comma-separated models the agent may call")
    a.add_argument("--daily-usd", help="hard cap per day")
    a.add_argument("--monthly-usd", help="hard cap per month")
    a.add_argument("--max-tokens", type=int, help="output ceiling")
    a.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="any agent field of fleet.yaml, e.g. --set 'limits={\"requests_per_minute\": 60}'")  # fmt: skip
    _gateway_args(a)

    r = sub.add_parser(
        "report",
        help="spend, refusals, savings and burn rate from the ledger alone (no provider keys; gateway up or not)",
    )
    r.add_argument("--config", default="fleet.yaml", help="fleet.yaml: the ledger, timezone and caps")
    r.add_argument("--ledger", help="read this ledger file without a fleet.yaml (UTC, no caps)")
    r.add_argument("--since", help="first local day, ISO (default: the 1st of this month)")
    r.add_argument("--until", help="last local day, ISO, included (default: today)")
    r.add_argument(
        "--by", default="agent", help="agent, model, task, status, day, week, month or lever; a,b groups by both"
    )
    r.add_argument("--format", choices=["table", "csv", "json"], default="table")
    r.add_argument("--at", help="report as of this ISO time (default: now); moves 'today' and the projections")

    g = sub.add_parser("ledger", help="check the ledger and its journal (stop the gateway first); --repair fixes")
    g.add_argument("action", choices=["check"])
    g.add_argument("--config", default="fleet.yaml")
    g.add_argument(
        "--repair",
        action="store_true",
        help="take unreadable journal lines out (kept aside in <ledger>.journal-rejected) so the gateway starts",
    )
    dr = sub.add_parser("doctor", help="check each provider: reachable, TLS, proxy, key (one free call each)")
    dr.add_argument("--config", default="fleet.yaml")

    c = sub.add_parser("config", help="check a fleet.yaml (every problem at once), or print its JSON Schema")
    c.add_argument("action", choices=["check", "schema"])
    c.add_argument("file", nargs="?", default="fleet.yaml", help="for `check`: the fleet.yaml (default ./fleet.yaml)")
    c.add_argument("--markdown", action="store_true", help="for `schema`: the config reference as a Markdown table")

    from .batch.cli import add_parser as add_batch

    add_batch(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if args.cmd == "sim":
        from .sim import main as sim_main

        return sim_main(rest) or 0
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.cmd == "agents" or (args.cmd == "keys" and args.action in ("create", "rotate", "revoke", "list")):
        from .fleet.cli import run as fleet_run

        return fleet_run(args)
    if args.cmd == "keys":
        key = args.key if args.action == "hash" else "pm-" + secrets.token_urlsafe(24)
        if not key:
            p.error("keys hash needs the key")
        if args.action == "new":
            print(f"key:        {key}")
        print(f"key_sha256: {hash_key(key)}")
        return 0
    if args.cmd == "batch":
        from .batch.cli import run as run_batch

        return run_batch(args)
    if args.cmd == "config":
        return config_command(args.action, args.file, markdown=args.markdown)
    if args.cmd == "demo":
        try:
            from .demo import run

            run(tasks=args.tasks, keep=not args.exit, out=lambda line: print(line, flush=True))  # `| tee` sees it
        except KeyboardInterrupt:  # Ctrl-C before the figures were printed (while serving, it ends the demo)
            print("\npaymaster demo: interrupted", file=sys.stderr)
            return 130
        return 0
    if args.cmd == "report":
        from .report_cli import run as run_report

        return run_report(args)

    try:
        config = load(args.config)
    except ConfigError as e:
        print(f"paymaster: bad config: {e.problems[0]}", file=sys.stderr)
        for line in e.problems[1:]:
            print(f"paymaster: bad config: {line}", file=sys.stderr)
        return 2
    try:
        return command(args, config)
    except LedgerError as e:
        print(f"paymaster: {e}", file=sys.stderr)
        return 2


def _gateway_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="fleet.yaml", help="fleet.yaml: where the gateway listens (listen:)")
    p.add_argument("--url", help="the gateway's URL (default: from --config)")
    p.add_argument("--admin-key-env", default="PAYMASTER_ADMIN_KEY", help="variable holding the admin key")


def config_command(action: str, file: str, markdown: bool = False) -> int:
    """`config schema`: JSON Schema of fleet.yaml on stdout; `config check`: 0 if the file loads, else 1."""
    if action == "schema":
        from .config.reference import markdown as reference

        try:
            print(reference() if markdown else json.dumps(json_schema(), indent=2))
        except BrokenPipeError:  # `paymaster config schema | head`
            sys.stderr.close()
        return 0
    try:
        config = load(file)
    except ConfigError as e:
        print(f"paymaster: {file}: {len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}", file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{file}: ok ({len(config.agents)} agents, {len(config.providers)} providers, {len(config.models)} models)")
    return 0


def command(args: argparse.Namespace, config: Config) -> int:
    if args.cmd == "serve":
        from .app import Gateway
        from .providers import Target
        from .providers.proxy import ProxyURLError
        from .server import serve

        host, port = args.host or config.host, args.port or config.port
        try:  # a proxy variable in the environment the gateway cannot use: say so before opening the ledger
            for provider in config.providers.values():
                Target.of(provider)
        except ProxyURLError as e:
            print(f"paymaster: bad proxy setting: {e}", file=sys.stderr)
            return 2
        gateway = Gateway(config, fleet_file=Path(args.config))  # its file: run-time changes, SIGHUP reloads
        print(f"paymaster: serving {len(config.agents)} agents on http://{host}:{port} (ledger {config.ledger})")
        serve(gateway, host, port, log_level="info")
        return 0
    if args.cmd == "ledger":
        from .store.check import check

        report = check(config.ledger, repair=args.repair)
        print("\n".join(report.lines))
        return 1 if report.problems else 0
    if args.cmd == "doctor":
        from .doctor import run as run_doctor

        return run_doctor(config)
    return 1


if __name__ == "__main__":
    sys.exit(main())
