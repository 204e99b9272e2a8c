"""The durable job queue, in the ledger's own SQLite file (its own tables and migration names).

A job is one deferred (or batch-API) request: admitted, its worst case at batch prices held, written here
before the agent hears `202`, so a restart finds it again — queued, or submitted in a provider batch whose
polling resumes. A job is settled exactly once: its ledger row (id = job id) is booked first and the job
marked after; on start, a job still open whose ledger row exists is marked, never booked twice.

    job:   queued → submitted → succeeded | errored | expired | canceled

Jobs are claimed (status `submitted`, submission `claim:<replica>:<token>`) before they go to the provider and
given their provider batch after, so a cancel never cancels a job being sent. A claim left by a process that
stopped before the provider answered cannot be told from a batch the provider runs: such a job is booked at
its worst case, flagged for reconciliation (`lost_claims`), never sent again. Replicas keep the same queue in
Postgres (`pg_queue.py`), with the same methods.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

MIGRATIONS: list[tuple[str, str]] = [
    (
        "batch_001_jobs",
        """
        CREATE TABLE batch_jobs (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            api TEXT NOT NULL,
            target_api TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            model_requested TEXT NOT NULL,
            task TEXT NOT NULL DEFAULT '',
            body BLOB NOT NULL,
            status TEXT NOT NULL,
            worst_nanos INTEGER NOT NULL,
            max_tokens INTEGER NOT NULL,
            day TEXT NOT NULL,
            month TEXT NOT NULL,
            created REAL NOT NULL,
            deadline REAL,
            grp TEXT NOT NULL DEFAULT '',
            custom_id TEXT NOT NULL DEFAULT '',
            submission TEXT NOT NULL DEFAULT '',
            result BLOB,
            error TEXT NOT NULL DEFAULT '',
            cost_nanos INTEGER NOT NULL DEFAULT 0,
            realtime_nanos INTEGER NOT NULL DEFAULT 0,
            finished REAL
        );
        CREATE INDEX batch_jobs_open ON batch_jobs (status);
        CREATE INDEX batch_jobs_agent ON batch_jobs (agent, created);
        CREATE INDEX batch_jobs_grp ON batch_jobs (grp);
        CREATE TABLE batch_submissions (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            provider_batch_id TEXT NOT NULL,
            input_file_id TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            created REAL NOT NULL
        );
        CREATE TABLE batch_groups (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            api TEXT NOT NULL,
            created REAL NOT NULL,
            cancel INTEGER NOT NULL DEFAULT 0,
            meta BLOB
        );
        CREATE INDEX batch_groups_agent ON batch_groups (agent, created);
        CREATE TABLE batch_files (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            filename TEXT NOT NULL,
            purpose TEXT NOT NULL,
            data BLOB NOT NULL,
            created REAL NOT NULL
        )
        """,
    ),
]

OPEN = ("queued", "submitted")
CLAIM = "claim:"  # the submission of jobs claimed for sending, until the provider names their batch


def claim_id(replica: str) -> str:
    return f"{CLAIM}{replica}:{secrets.token_hex(6)}"


DONE = ("succeeded", "errored", "expired", "canceled")


@dataclass(slots=True)
class Job:
    id: str
    agent: str
    api: str  # the caller's API
    target_api: str  # the provider's (the body's shape)
    provider: str
    model: str
    model_requested: str
    body: bytes  # the request as the provider gets it
    status: str
    worst_nanos: int
    max_tokens: int
    day: str
    month: str
    created: float
    deadline: float | None = None
    task: str = ""
    grp: str = ""  # the agent's batch (batch APIs), "" for a deferred call
    custom_id: str = ""  # the agent's id for it within its batch
    submission: str = ""
    result: bytes | None = None  # the answer in the caller's API shape (or its error)
    error: str = ""
    cost_nanos: int = 0
    realtime_nanos: int = 0
    finished: float | None = None


COLS = [f.name for f in fields(Job)]
SELECT_JOBS = f"SELECT {', '.join(COLS)} FROM batch_jobs"
INSERT_JOB = f"INSERT INTO batch_jobs ({', '.join(COLS)}) VALUES ({', '.join('?' * len(COLS))})"
INSERT_SUBMISSION = "INSERT INTO batch_submissions VALUES (?, ?, ?, ?, 'open', ?)"
SUBMITTED = "UPDATE batch_jobs SET submission = ? WHERE submission = ? AND status = 'submitted'"


class Queue:
    """The queue in SQLite. Its reads and single writes go through `rows` and `write`, in SQL that Postgres
    runs too (`?` placeholders): the replicas' queue (pg_queue.py) replaces those two and the writes that
    must be one transaction there."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.replica = "p" + secrets.token_hex(6)  # this process, in its claims
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
        done = {r[0] for r in conn.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name not in done:
                with self.tx():
                    for stmt in sql.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))

    def close(self) -> None:
        """Nothing of its own to close: the connection is the ledger's."""

    def tx(self) -> _Tx:
        return _Tx(self.conn)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql, tuple(args))]

    def write(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self.tx():
            self.conn.execute(sql, tuple(args))

    def add(self, jobs: list[Job]) -> None:
        """Durable on return (one transaction)."""
        with self.tx():
            self.conn.executemany(INSERT_JOB, [tuple(getattr(j, c) for c in COLS) for j in jobs])

    def jobs(self, where: str, args: tuple[Any, ...] = (), limit: int = 100_000) -> list[Job]:
        return [Job(*r) for r in self.rows(f"{SELECT_JOBS} WHERE {where} ORDER BY created, id LIMIT ?", (*args, limit))]

    def tally(self, gid: str) -> dict[str, tuple[int, float]]:
        """An agent's batch at a glance: {status: (jobs, latest finish)} — its views read no request bodies."""
        q = "SELECT status, count(*), max(finished) FROM batch_jobs WHERE grp = ? GROUP BY status"
        return {r[0]: (int(r[1]), float(r[2] or 0)) for r in self.rows(q, (gid,))}

    def job(self, job_id: str) -> Job | None:
        found = self.jobs("id = ?", (job_id,), 1)
        return found[0] if found else None

    def lead(self) -> bool:
        """Whether this process sends and polls the queue's batches: the only one with this file."""
        return True

    def claim(self, ids: list[str], claim: str) -> list[str]:
        """Mark queued jobs as being sent (a cancel leaves them alone from now on); the ids claimed."""
        with self.tx():
            self.conn.executemany(
                "UPDATE batch_jobs SET status = 'submitted', submission = ? WHERE id = ? AND status = 'queued'",
                [(claim, i) for i in ids],
            )
        return [r[0] for r in self.rows("SELECT id FROM batch_jobs WHERE submission = ?", (claim,))]

    def unclaim(self, claim: str) -> None:
        """The provider refused the batch: its jobs are queued again."""
        self.write(
            "UPDATE batch_jobs SET status = 'queued', submission = '' WHERE submission = ? AND status = 'submitted'",
            (claim,),
        )

    def lost_claims(self) -> list[Job]:
        """Jobs claimed by a process that is gone (here: any other than this one)."""
        mine = f"{CLAIM}{self.replica}:%"
        return self.jobs("status = 'submitted' AND submission LIKE ? AND submission NOT LIKE ?", (CLAIM + "%", mine))

    def submitted(self, claim: str, submission: str, provider: str, batch_id: str, file_id: str) -> None:
        with self.tx():
            self.conn.execute(INSERT_SUBMISSION, (submission, provider, batch_id, file_id, time.time()))
            self.conn.execute(SUBMITTED, (submission, claim))

    def open_submissions(self) -> list[tuple[str, str, str]]:
        """(submission id, provider, provider batch id) of batches not yet read back."""
        return [(r[0], r[1], r[2]) for r in self.rows(
            "SELECT id, provider, provider_batch_id FROM batch_submissions WHERE status = 'open'"
        )]  # fmt: skip

    def close_submission(self, submission: str) -> None:
        self.write("UPDATE batch_submissions SET status = 'read' WHERE id = ?", (submission,))

    def finish(self, j: Job) -> None:
        self.write(
            "UPDATE batch_jobs SET status = ?, result = ?, error = ?, cost_nanos = ?, realtime_nanos = ?, "
            "finished = ? WHERE id = ?",
            (j.status, j.result, j.error, j.cost_nanos, j.realtime_nanos, j.finished, j.id),
        )

    # -- the agents' batches and files (batch APIs)

    def add_group(self, gid: str, agent: str, api: str, meta: bytes) -> None:
        self.write("INSERT INTO batch_groups VALUES (?, ?, ?, ?, 0, ?)", (gid, agent, api, time.time(), meta))

    def group(self, gid: str, agent: str) -> tuple[str, float, int, bytes] | None:
        q = "SELECT api, created, cancel, meta FROM batch_groups WHERE id = ? AND agent = ?"
        found = self.rows(q, (gid, agent))
        return None if not found else (found[0][0], found[0][1], found[0][2], found[0][3])

    def groups(self, agent: str, api: str) -> list[str]:
        q = "SELECT id FROM batch_groups WHERE agent = ? AND api = ? ORDER BY created DESC, id DESC"
        return [r[0] for r in self.rows(q, (agent, api))]

    def drop_group(self, gid: str) -> None:
        self.write("DELETE FROM batch_groups WHERE id = ?", (gid,))

    def cancel_group(self, gid: str) -> None:
        self.write("UPDATE batch_groups SET cancel = 1 WHERE id = ?", (gid,))

    def add_file(self, fid: str, agent: str, filename: str, purpose: str, data: bytes) -> float:
        now = time.time()
        self.write("INSERT INTO batch_files VALUES (?, ?, ?, ?, ?, ?)", (fid, agent, filename, purpose, data, now))
        return now

    def file(self, fid: str, agent: str) -> tuple[str, str, bytes, float] | None:
        found = self.rows("SELECT filename, purpose, data, created FROM batch_files WHERE id = ? AND agent = ?",
                          (fid, agent))  # fmt: skip
        return None if not found else (found[0][0], found[0][1], found[0][2], found[0][3])


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.replica = "p" + secrets.token_hex(6)  # this process, in its claims

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
