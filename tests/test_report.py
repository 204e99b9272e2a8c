"""`paymaster report` against a hand-computed ledger; its CSV and JSON shapes; it reads the ledger alone."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

import jsonschema
import orjson
import yaml

from paymaster.report import Caps, build, csv_columns, open_ledger, to_csv, to_text
from paymaster.store.row import LedgerRow
from paymaster.store.sqlite import SQLiteStore

UTC = datetime.fromisoformat("2026-11-20T12:00:00+00:00").tzinfo
NOW = datetime.fromisoformat("2026-11-20T12:00:00+00:00").timestamp()
CAPS = Caps(
    agents={"alice": (Decimal("0.005"), Decimal("1")), "bob": (Decimal("0.01"), Decimal("0.006"))},
)


def row(n: int, agent: str, day: str, status: str = "ok", cost: int = 0, **kw) -> LedgerRow:
    ts = datetime.fromisoformat(day + "T10:00:00+00:00").timestamp() + n
    return LedgerRow(
        id=f"pm_{n}",
        ts=ts,
        agent=agent,
        api="anthropic",
        provider="anthropic",
        model_requested=kw.pop("model", "claude-haiku-4-5"),
        model=kw.pop("model_ran", "claude-haiku-4-5"),
        status=status,
        cost_usd=str(Decimal(cost) / 10**9),
        cost_nanos=cost,
        day=day,
        month=day[:7],
        **kw,
    )


LEDGER = [
    row(1, "alice", "2026-11-20", cost=1_000_000, baseline_cost_nanos=3_000_000, task="extract", input_tokens=1000,
        output_tokens=100, cache_read_tokens=800, savings='{"routing": 2500000, "caching": -500000}'),
    row(2, "alice", "2026-11-20", cost=2_000_000, baseline_cost_nanos=2_000_000, input_tokens=500, output_tokens=50),
    row(3, "alice", "2026-11-19", "response_cache", baseline_cost_nanos=1_000_000,
        savings='{"response_cache": 1000000}'),
    row(4, "bob", "2026-11-19", "upstream_error", model_ran="claude-sonnet-4-6"),
    row(5, "bob", "2026-11-20", "refused", error="budget_exceeded: agent daily"),
    row(6, "bob", "2026-11-20", "refused", error="budget_exceeded: agent daily"),
    row(7, "bob", "2026-11-02", cost=5_000_000, baseline_cost_nanos=6_000_000, route="task:x, degraded at 80% of a cap",
        model_ran="claude-sonnet-4-6", savings='{"routing": 1000000}', reconcile=1),
    row(8, "carol", "2026-10-31", cost=9_000_000, baseline_cost_nanos=9_000_000),
]  # fmt: skip


def make_ledger(path: Path, rows=LEDGER) -> None:
    store = SQLiteStore(str(path))
    store.recover(NOW)

    async def book() -> None:
        for r in rows:
            store.book(r)
        store.flush()

    asyncio.run(book())
    store.close()


def test_figures_match_the_hand_computed_ledger(tmp_path):
    make_ledger(tmp_path / "l.db")
    with open_ledger(tmp_path / "l.db") as conn:
        r = build(conn, CAPS, "2026-11-01", "2026-11-20", ["agent"], NOW)
    t = r["totals"]
    assert (t["calls"], t["refused"], t["failed"]) == (5, 2, 1)
    assert (t["spend_nanos"], t["baseline_nanos"], t["saved_nanos"]) == (8_000_000, 12_000_000, 4_000_000)
    assert (t["spend_usd"], t["saved_usd"]) == ("0.008000", "0.004000")
    assert t["saved_by_lever_nanos"] == {
        "output": 0, "compression": 0, "routing": 3_500_000, "caching": -500_000, "response_cache": 1_000_000,
        "batch": 0,
    }  # fmt: skip
    assert sum(t["saved_by_lever_nanos"].values()) == t["saved_nanos"]
    assert t["prompt_cache_hit_rate"] == 0.3333 and t["response_cache_hit_rate"] == 0.25
    assert t["reconcile_pending"] == 1
    alice, bob = r["groups"]
    assert (alice["agent"], alice["calls"], alice["spend_nanos"], alice["baseline_nanos"]) == (
        "alice",
        3,
        3_000_000,
        6_000_000,
    )
    assert (bob["agent"], bob["calls"], bob["refused"], bob["failed"], bob["spend_nanos"]) == (
        "bob",
        2,
        2,
        1,
        5_000_000,
    )
    assert [(e["type"], e["agent"], e["day"], e["window"], e["calls"]) for e in r["events"]] == [
        ("agent.degraded", "bob", "2026-11-02", "", 1),
        ("agent.blocked", "bob", "2026-11-20", "agent daily", 2),
    ]
    lever = {s["lever"]: (s["calls"], s["saved_nanos"]) for s in r["savings_by_lever"]}
    assert lever["routing"] == (2, 3_500_000) and lever["caching"] == (1, -500_000)


def test_burn_rate_and_time_to_cap(tmp_path):
    make_ledger(tmp_path / "l.db")
    with open_ledger(tmp_path / "l.db") as conn:
        p = {x["agent"]: x for x in build(conn, CAPS, now=NOW)["projection"]}
    a = p["alice"]  # $0.003 in the first 12 hours of the day: $0.006 by midnight, the $0.005 cap at 20:00
    assert (a["spent_today_usd"], a["projected_today_usd"]) == ("0.003000", "0.006000")
    assert a["hits_cap_at"] == "2026-11-20T20:00:00+00:00" and a["hits_cap_in_hours"] == 8.0
    assert a["spent_month_usd"] == "0.003000" and a["projected_month_usd"] == "0.004616"  # 3M × 30 / 19.5 days
    b = p["bob"]  # $0.005 in 19.5 days of November: the $0.006 monthly cap 3.9 days later
    assert b["spent_today_usd"] == "0.000000" and b["projected_month_usd"] == "0.007693"
    assert b["hits_cap_at"] == "2026-11-24T09:36:00+00:00" and b["hits_cap_in_hours"] == 93.6
    fleet = p[None]
    assert (fleet["spent_today_usd"], fleet["spent_month_usd"], fleet["hits_cap_at"]) == ("0.003000", "0.008000", None)


def test_periods_and_groupings(tmp_path):
    make_ledger(tmp_path / "l.db")
    with open_ledger(tmp_path / "l.db") as conn:
        one_day = build(conn, CAPS, "2026-11-19", "2026-11-19", ["agent", "status"], NOW)
        weeks = build(conn, CAPS, "2026-10-01", "2026-11-30", ["week"], NOW)
        months = build(conn, CAPS, "2026-10-01", "2026-11-30", ["month", "model"], NOW)
        by_lever = build(conn, CAPS, "2026-11-01", "2026-11-30", ["lever"], NOW)
    assert [(g["agent"], g["status"], g["calls"]) for g in one_day["groups"]] == [
        ("alice", "response_cache", 1),
        ("bob", "upstream_error", 1),
    ]
    assert [(g["week"], g["spend_nanos"]) for g in weeks["groups"]] == [
        ("2026-W44", 9_000_000),  # Saturday 31 October
        ("2026-W45", 5_000_000),
        ("2026-W47", 3_000_000),
    ]
    assert [(g["month"], g["model"], g["calls"]) for g in months["groups"]] == [
        ("2026-10", "claude-haiku-4-5", 1),
        ("2026-11", "claude-haiku-4-5", 3),
        ("2026-11", "claude-sonnet-4-6", 2),
    ]
    assert {g["lever"]: g["saved_nanos"] for g in by_lever["groups"]}["routing"] == 3_500_000


def test_json_matches_its_schema_and_csv_its_header(tmp_path):
    make_ledger(tmp_path / "l.db")
    schema = json.loads(resources.files("paymaster").joinpath("data/report.schema.json").read_text())
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    with open_ledger(tmp_path / "l.db") as conn:
        for by in (["agent"], ["agent", "day"], ["lever"], ["task", "week"]):
            r = build(conn, CAPS, "2026-11-01", "2026-11-30", by, NOW)
            checker.validate(orjson.loads(orjson.dumps(r)))
            lines = list(csv.reader(io.StringIO(to_csv(r))))
            assert tuple(lines[0]) == csv_columns(by) and len(lines) == len(r["groups"]) + 1
            assert to_text(r)
    bad = dict(r, totals=dict(r["totals"], spend_usd=1.5))
    assert not checker.is_valid(bad)  # the schema does reject a float dollar figure
    rows = list(csv.DictReader(io.StringIO(to_csv(build(open_ledger(tmp_path / "l.db"), CAPS, now=NOW)))))
    alice = rows[0]
    assert (alice["agent"], alice["spend_usd"], alice["saved_routing_usd"], alice["saved_caching_usd"]) == (
        "alice",
        "0.003000",
        "0.002500",
        "-0.000500",
    )


def report(*args: str) -> subprocess.CompletedProcess[str]:
    """`paymaster report …` in its own process, with no provider key in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "SIM_KEY"}
    cmd = [sys.executable, "-m", "paymaster.cli", "report", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_cli_reads_the_ledger_alone_while_a_gateway_holds_it(tmp_path, gateway):
    gw = gateway(ledger=str(tmp_path / "live.db"))
    gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    gw.ledger()  # committed
    config = dict(gw.raw, ledger="live.db")
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(config))
    out = report("--config", str(tmp_path / "fleet.yaml"), "--format", "json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["totals"]["calls"] == 1 and r["groups"][0]["agent"] == "alice"
    assert gw.anthropic().messages.create(  # the gateway still writes its ledger
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    table = report("--ledger", str(tmp_path / "live.db"), "--by", "model,day")
    assert table.returncode == 0, table.stderr
    assert "claude-haiku-4-5" in table.stdout and "burn rate" in table.stdout


def test_cli_says_what_is_wrong(tmp_path):
    missing = report("--ledger", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no ledger" in missing.stderr
    make_ledger(tmp_path / "l.db")
    assert "not-a-date" in report("--ledger", str(tmp_path / "l.db"), "--since", "not-a-date").stderr
    assert "cannot group by 'colour'" in report("--ledger", str(tmp_path / "l.db"), "--by", "colour").stderr


def test_a_ledger_from_before_the_savings_column_still_reports(tmp_path):
    make_ledger(tmp_path / "old.db")
    with sqlite3.connect(tmp_path / "old.db") as c:
        c.execute("ALTER TABLE ledger DROP COLUMN savings")
    with open_ledger(tmp_path / "old.db") as conn:
        t = build(conn, CAPS, "2026-11-01", "2026-11-20", ["agent"], NOW)["totals"]
    assert t["spend_nanos"] == 8_000_000 and t["baseline_nanos"] == 12_000_000
    assert all(v == 0 for v in t["saved_by_lever_nanos"].values())  # the split is unknown, the total is not


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`paymaster report | head -1`: the pipe closes before the report is written; that is not an error."""
    make_ledger(tmp_path / "l.db")
    for fmt in ("table", "csv", "json"):
        p = subprocess.Popen(
            [sys.executable, "-c", "import sys; from paymaster.cli import main; sys.exit(main())", "report",
             "--ledger", str(tmp_path / "l.db"), "--since", "2026-10-01", "--format", fmt],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert p.stdout is not None
        p.stdout.close()  # the reader is gone before the report is built
        _, err = p.communicate(timeout=60)
        assert "Traceback" not in err and "Exception ignored" not in err, (fmt, err)
        assert p.returncode == 0, (fmt, err)
