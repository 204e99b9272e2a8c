"""The fleet as it stands: fleet.yaml (the declarative seed) plus the changes made at run time.

Precedence: for each agent, a field set at run time (admin API / `paymaster agents set`) wins over the
file's value for that field; the fields it never set follow fleet.yaml (re-read on SIGHUP). An agent added at
run time exists in the store only; `disable` is a run-time state only. Keys made at run time live in the store
(hashed); an agent's fleet.yaml key works until it is rotated away or revoked.

Every change is validated as a whole fleet (the same checks as `paymaster config check`), written to the store
in one transaction that bumps the fleet version, then applied: the gateway's Config is replaced between two
calls; a call in flight keeps the agent it was admitted as. Replicas poll the version (`admin.poll_s`) and
apply what another replica wrote, so a change is seen everywhere within a second.

A reload (SIGHUP) applies a valid file the same way; an invalid one, or one that changes what only a restart
can change (providers, models, listen, the store, the time zone, routing), is refused and the old config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import secrets
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Agent, Config, ConfigError, hash_key, parse
from ..config.yaml_file import read_file
from ..errors import BadRequest, Forbidden, NotFound, Unauthorized
from .tables import AgentRow, KeyRow, PostgresTables, SQLiteTables, State, Tables

if TYPE_CHECKING:
    from ..app import Gateway

log = logging.getLogger("paymaster")

# what a reload may not change (the gateway holds connections, files and tables built from them)
RESTART_ONLY = ("providers", "models", "listen", "ledger", "store", "reservations", "replica_lease_s",
                "on_store_outage", "durability", "timezone", "routing")  # fmt: skip
EMPTY = State(0, {}, {})


def new_key() -> str:
    return "pm-" + secrets.token_urlsafe(24)


def key_id(key_hash: str) -> str:
    """A key's public name: a prefix of its hash (the hash of a random key says nothing of the key)."""
    return "key_" + key_hash[:12]


def merged(seed: Mapping[str, Any], agents: Mapping[str, AgentRow]) -> dict[str, Any]:
    """fleet.yaml with the run-time fields laid over each agent's."""
    raw = dict(seed)
    out = dict(raw.get("agents") or {})
    for name, row in agents.items():
        out[name] = {**(out.get(name) or {}), **row.spec}
    raw["agents"] = out
    return raw


class Fleet:
    def __init__(self, gateway: Gateway, seed: Mapping[str, Any] | None, path: Path | None,
                 env: Mapping[str, str] | None) -> None:  # fmt: skip
        self.gw = gateway
        self.seed = seed
        self.path = path
        self.env = env
        self.state = EMPTY
        self.tables: Tables | None = None
        self.disabled: frozenset[str] = frozenset()
        self._seen: dict[str, tuple[Agent, float]] = {}  # key -> (agent, usable until)
        self._lock = asyncio.Lock()

    # -- the hot path ------------------------------------------------------------------------------

    def agent(self, key: str) -> Agent:
        """The agent a key belongs to, or Unauthorized (unknown, rotated past its grace, revoked) / Forbidden."""
        hit = self._seen.get(key)
        if hit is None or self.gw.clock() >= hit[1]:
            hit = self._lookup(key)
        agent = hit[0]
        if agent.name in self.disabled:
            raise Forbidden(f"agent {agent.name!r} is disabled")
        return agent

    def known(self, key: str) -> Agent | None:
        """The agent a key names, refused or not (metrics name the agent of a refused call)."""
        try:
            return self.agent(key)
        except Forbidden:
            return self._seen[key][0]
        except Unauthorized:
            return None

    def _lookup(self, key: str) -> tuple[Agent, float]:
        self._seen.pop(key, None)
        h = hash_key(key)
        row = self.state.keys.get(h)
        config = self.gw.config
        if row is not None:
            agent = config.agents.get(row.agent) if row.live(self.gw.clock()) else None
            until = row.expires if row.expires is not None else math.inf
        else:
            agent = config._by_hash.get(h)
            until = math.inf
        if agent is None:
            raise Unauthorized("invalid API key")
        if len(self._seen) < 100_000:  # keys seen before are hashed once (bounded: random keys are not kept)
            self._seen[key] = (agent, until)
        return agent, until

    # -- life --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load what was changed at run time (a restart keeps it) and, across replicas, watch for changes."""
        from ..store.shared import SharedStore

        store = self.gw.store
        self.tables = PostgresTables(store.pg.db) if isinstance(store, SharedStore) else SQLiteTables(store.conn)
        state = await self.tables.load()
        try:
            self._apply(state, self._build(state.agents))
        except ConfigError as e:  # fleet.yaml changed under the stored changes: run on the file, say why
            log.error("fleet changes in the store do not fit fleet.yaml, running on fleet.yaml alone: %s", e)
            self.gw.board.publish("fleet.invalid", problems=e.problems)
            self._apply(dataclasses.replace(state, agents={}), self.gw.config)
        if isinstance(store, SharedStore):
            self.gw.spawn(self.watch())

    async def watch(self) -> None:
        """Apply what another replica changed: the version is polled every `admin.poll_s`."""
        assert self.tables is not None
        while True:
            await asyncio.sleep(self.gw.config.management.poll_s)
            try:
                if await self.tables.version() != self.state.version:
                    async with self._lock:
                        state = await self.tables.load()
                        self._apply(state, self._build(state.agents))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 — a store outage or a bad change: keep serving, retry
                log.warning("fleet changes could not be applied: %s", e)

    # -- changes -----------------------------------------------------------------------------------

    def _build(self, agents: Mapping[str, AgentRow], seed: Mapping[str, Any] | None = None) -> Config:
        seed = self.seed if seed is None else seed
        if seed is None:
            if agents:
                raise ConfigError("the gateway was started without its fleet file: run-time agents cannot apply")
            return self.gw.config
        return parse(merged(seed, agents), env=self.env, base=self.path.parent if self.path else None)

    def _apply(self, state: State, config: Config) -> None:
        old = self.gw.config
        if config is not old:
            for name, model in config.models.items():  # the levers hold the models dict: they see new ones too
                old.models.setdefault(name, model)
            config = dataclasses.replace(config, models=old.models)
            self.gw.reconfigure(config)
        self.state = state
        self.disabled = frozenset(n for n, a in state.agents.items() if a.disabled)
        self._seen.clear()

    async def change(self, agents: list[AgentRow], keys: list[KeyRow]) -> None:
        """Validate the fleet with these changes, store them (one transaction), apply them."""
        assert self.tables is not None
        async with self._lock:
            state = await self.tables.load()  # another replica's changes first
            rows = {**state.agents, **{a.name: a for a in agents}}
            try:
                config = self._build(rows)
            except ConfigError as e:
                raise BadRequest("; ".join(e.problems)) from None
            for k in keys:
                if k.agent not in config.agents:
                    raise NotFound(f"no agent named {k.agent!r}")
            await self.tables.write(agents, keys)
            self._apply(await self.tables.load(), config)

    def row(self, name: str) -> AgentRow:
        now = self.gw.clock()
        return self.state.agents.get(name) or AgentRow(name, {}, False, now)

    def keys_of(self, agent: str) -> list[KeyRow]:
        """Every key of `agent`, its fleet.yaml key included (as a row, whether or not the store has it)."""
        rows = [k for k in self.state.keys.values() if k.agent == agent]
        a = self.gw.config.agents.get(agent)
        if a is not None and a.key_hash not in self.state.keys:
            rows.append(KeyRow(key_id(a.key_hash), agent, a.key_hash, 0.0))
        return rows

    async def add_key(self, agent: str, grace_s: float | None) -> tuple[str, KeyRow]:
        """A new key for `agent` (shown once). With `grace_s` (rotate), every other live key of the agent
        expires that many seconds from now."""
        if agent not in self.gw.config.agents:
            raise NotFound(f"no agent named {agent!r}")
        now = self.gw.clock()
        key = new_key()
        h = hash_key(key)
        fresh = KeyRow(key_id(h), agent, h, now)
        old: list[KeyRow] = []
        if grace_s is not None:
            until = now + grace_s
            old = [dataclasses.replace(k, expires=until) for k in self.keys_of(agent)
                   if k.live(now) and (k.expires is None or k.expires > until)]  # fmt: skip
        await self.change([], [*old, fresh])
        self.gw.board.publish("key.rotated" if grace_s is not None else "key.created", agent=agent, key_id=fresh.id,
                              old_keys_expire=now + grace_s if grace_s is not None else None)  # fmt: skip
        return key, fresh

    async def revoke(self, key_id_: str) -> KeyRow:
        now = self.gw.clock()
        for name in self.gw.config.agents:
            for k in self.keys_of(name):
                if k.id == key_id_:
                    gone = dataclasses.replace(k, revoked=k.revoked or now)
                    await self.change([], [gone])
                    self.gw.board.publish("key.revoked", agent=name, key_id=k.id)
                    return gone
        raise NotFound(f"no key {key_id_!r}")

    # -- reload (SIGHUP) ---------------------------------------------------------------------------

    async def reload(self) -> tuple[bool, list[str]]:
        """Re-read fleet.yaml: applied if valid (True, []), else refused with its problems (the old config stays)."""
        if self.path is None:
            return False, ["the gateway was started without a fleet file"]
        try:
            seed = read_file(self.path)
            if not isinstance(seed, Mapping):
                raise ConfigError(f"{self.path}: must be a mapping")
            old = self.seed or {}
            moved = [k for k in RESTART_ONLY if deepcopy(seed.get(k)) != deepcopy(old.get(k))]
            if moved:
                raise ConfigError([f"{k}: changed; restart the gateway to change it" for k in moved])
            async with self._lock:
                config = self._build(self.state.agents, seed)
                self.seed = seed
                self._apply(self.state, config)
        except (ConfigError, OSError) as e:
            problems = list(e.problems) if isinstance(e, ConfigError) else [str(e)]
            log.error("fleet.yaml reload refused, the old config stays: %s", "; ".join(problems))
            self.gw.board.publish("fleet.reload_refused", problems=problems)
            return False, problems
        self.gw.board.publish("fleet.reloaded", agents=len(config.agents))
        log.info("fleet.yaml reloaded: %d agents", len(config.agents))
        return True, []

    def on_sighup(self) -> None:
        self.gw.spawn(self._reload_quietly())

    async def _reload_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.reload()
