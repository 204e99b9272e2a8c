"""Where the caching lever puts Anthropic `cache_control` breakpoints, within the documented rules.

    from paymaster.levers.cache_breakpoints import place_breakpoints
    place_breakpoints(body, "claude-sonnet-4-6", "5m")   # → how many it added (the body is changed in place)

The rules (platform.claude.com/docs/en/build-with-claude/prompt-caching; tool-use-with-prompt-caching):

- At most `MAX_BREAKPOINTS` per request, counting the caller's own, those nested in a tool_result or a
  document, and the automatic one a top-level `cache_control` puts on the last block that may carry one.
- Never on a thinking or redacted_thinking block, an empty text block, or a `defer_loading` tool.
- Processed tools → system → messages, no 1-hour breakpoint after a 5-minute one; the automatic
  breakpoint's block takes the top-level TTL (a different TTL already on that block is a 400, so the
  lever never puts one there).
- A read looks back at most `LOOKBACK_BLOCKS` blocks from each breakpoint for an entry an earlier
  request wrote; writes happen only at breakpoints.
- Only a prefix of the model's minimum cacheable length is cached. Prefixes are measured from below
  (a quarter of their text characters, which no tokenizer undercuts by much).

The candidates, and what each is worth (in tokens at the base input price; breakpoints cost nothing
themselves, only the tokens they make written or read):

1. the previous turn: the last block the previous request sent (the message before the latest
   assistant reply). Its entry was written by that request's last breakpoint; reading it saves 90 %
   of that prefix now. Needed when this request's last breakpoint is `LOOKBACK_BLOCKS` or more blocks
   past it (a turn of many tool calls and results), a cheap safeguard otherwise.
2. the conversation: the last block, so the next turn reads this one. It makes the new tail a write
   (+25 %, +100 % at 1 h) for reads on the turns to come.
   Not on a `max_tokens: 0` (pre-warming) call: its last message is a placeholder no request repeats.
3. the end of the system prompt, and 4. the end of the tools: prefixes other conversations share.

With room for all, all go in; with less, the most valuable ones. A new breakpoint takes the agent's
TTL unless the order forbids it: 5 minutes after a 5-minute one, 1 hour before a 1-hour one (which
costs nothing more: the 1-hour stretch ends at the last 1-hour breakpoint either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..prompt_cache import LOOKBACK_BLOCKS, MAX_BREAKPOINTS, WRITE_MULTIPLIERS, min_cacheable_tokens

# blocks the lever marks (the API takes cache_control on others too; these are the documented ones)
CACHEABLE_BLOCKS = ("text", "image", "document", "tool_use", "tool_result", "search_result")
NEVER_MARKED = ("thinking", "redacted_thinking")

# what the lever expects, to weigh one candidate against another when there is not room for all
P_PREVIOUS_WRITTEN = 0.9  # the previous request wrote an entry at its last block (and it is still live)
TURNS_AHEAD = 2.0  # later turns that read a conversation prefix written now
P_SHARED = 0.5  # another conversation sends the same system prompt within the TTL
P_TOOLS_ONLY = 0.25  # ... the same tools with a different system prompt
READ_SAVING = 0.9  # a read costs 0.1 of the base input price


@dataclass(slots=True)
class _Spot:
    """A top-level block of the prompt in prefix order (a tool, a system block, a message block)."""

    tokens: int  # a lower bound of the prefix's tokens through this block
    blocks: int  # blocks through this one, the nested ones counted (what the lookback walks)
    section: str  # "tools" | "system" | "tail" (system blocks the gateway appended) | "messages"
    message: int  # its message's index (-1 outside messages)
    block: dict[str, Any] | None  # the block; None for a string system prompt / message content
    owner: dict[str, Any] | None  # ... and then what holds the string, under `key`
    key: str
    markable: bool  # the lever may put a breakpoint here
    target: bool  # the API's automatic breakpoint may land here
    ttl: str | None = None  # the block's own breakpoint
    nested: tuple[str, ...] = ()  # TTLs of breakpoints on blocks inside it
    role: Any = None  # its message's role
    inner: int = 0  # blocks nested in it

    def mark(self, ttl: str) -> None:
        block = self.block
        if block is None:
            assert self.owner is not None
            block = {"type": "text", "text": self.owner[self.key]}
            self.owner[self.key] = [block]
            self.block = block
        block["cache_control"] = {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}
        self.ttl = ttl


def place_breakpoints(body: dict[str, Any], model: str, ttl: str, system_tail: int = 0) -> int:
    """Add breakpoints to an Anthropic Messages body in place; returns how many were added.

    `system_tail`: trailing system blocks the gateway appended (brevity framing) — they stay after
    the system breakpoint so a change in them never breaks the cached prefix.
    """
    spots = _spots(body, system_tail)
    if not spots:
        return 0
    marks = [
        (i, t) for i, s in enumerate(spots) if s.ttl or s.nested for t in (*s.nested, *((s.ttl,) if s.ttl else ()))
    ]
    room = MAX_BREAKPOINTS - len(marks)
    top = body.get("cache_control")
    auto = None
    if isinstance(top, dict):
        room -= 1  # the automatic breakpoint's slot, even where it would add nothing (4 explicit ones + it: a 400)
        auto = next((i for i in range(len(spots) - 1, -1, -1) if spots[i].target), None)
        if auto is not None and spots[auto].ttl is None:
            marks.append((auto, "1h" if top.get("ttl") == "1h" else "5m"))
    if room <= 0:
        return 0
    taken = {i for i, _ in marks} | ({auto} if auto is not None else set())
    warming = body.get("max_tokens") == 0  # a pre-warming call: its last message is a placeholder
    chosen = _choose(spots, marks, taken, min_cacheable_tokens(model), ttl, auto, warming)[:room]
    added = 0
    for i in sorted(chosen):
        mine = _allowed_ttl(i, ttl, marks)
        if mine is None:
            continue
        spots[i].mark(mine)
        marks.append((i, mine))
        added += 1
    return added


def _choose(
    spots: list[_Spot],
    marks: list[tuple[int, str]],
    taken: set[int],
    minimum: int,
    ttl: str,
    auto: int | None,
    warming: bool,
) -> list[int]:
    """Candidate positions, most valuable first (those worth nothing left out)."""
    worth: dict[int, float] = {}
    # the last markable block of each section; spots run tools → system → tail → messages, so the tools'
    # and the system's are found in a pass over the spots before the first message's
    section_end: dict[str, int] = {}
    for i, s in enumerate(spots):
        if s.section == "messages":
            break
        if s.markable:
            section_end[s.section] = i
    conversation = next((i for i in range(len(spots) - 1, -1, -1) if spots[i].markable), None)
    if conversation is not None and spots[conversation].section != "messages":
        conversation = None

    def offer(i: int | None, value: float) -> None:
        if i is not None and i not in taken and spots[i].markable and spots[i].tokens >= minimum and value > 0:
            worth[i] = max(worth.get(i, 0.0), value)

    previous = _previous_turn(spots)
    read_from = max((i for i, _ in marks), default=-1)  # the furthest breakpoint the caller set (or automatic)
    if previous is not None:
        ends = [i for i, _ in marks] + ([conversation] if conversation is not None else [])
        reached = any(0 <= spots[e].blocks - spots[previous].blocks < LOOKBACK_BLOCKS for e in ends)
        value = READ_SAVING * P_PREVIOUS_WRITTEN * spots[previous].tokens
        offer(previous, value if not reached else value * 0.01)  # a safeguard when the lookback reaches it
    if conversation is not None and auto is None and not warming:
        start = spots[previous].tokens if previous is not None else 0
        start = max(start, spots[read_from].tokens if read_from >= 0 else 0)
        written = max(spots[conversation].tokens - start, 1)  # a message adds a few tokens at least
        premium = WRITE_MULTIPLIERS["1h" if ttl == "1h" else "5m"] - 1
        offer(conversation, (READ_SAVING * TURNS_AHEAD - premium) * written)
    system_end, tools_end = section_end.get("system"), section_end.get("tools")
    if system_end is not None:
        offer(system_end, READ_SAVING * P_SHARED * spots[system_end].tokens)
    if tools_end is not None:
        offer(tools_end, READ_SAVING * P_TOOLS_ONLY * spots[tools_end].tokens)
    return sorted(worth, key=lambda i: -worth[i])


def _previous_turn(spots: list[_Spot]) -> int | None:
    """The last block the previous request sent: the end of the message before the latest assistant
    reply that has a message after it (the previous request's last breakpoint wrote there). Spots run in
    message order, so the scan from the end meets that reply first."""
    last_message = spots[-1].message if spots else -1
    reply = next(
        (
            s.message
            for s in reversed(spots)
            if s.message < last_message and s.role == "assistant" and s.section == "messages"
        ),
        None,
    )
    if reply is None:
        return None
    return next((i for i in range(len(spots) - 1, -1, -1) if spots[i].message < reply and spots[i].markable), None)


def _allowed_ttl(i: int, wanted: str, marks: list[tuple[int, str]]) -> str | None:
    """The TTL a new breakpoint at `i` may have: none after a 5-minute one is 1-hour, none before a 1-hour one is
    5-minute. None: neither may (the caller's own breakpoints already break the order)."""
    after_5m = any(q < i and t == "5m" for q, t in marks)
    before_1h = any(q > i and t == "1h" for q, t in marks)
    if after_5m and before_1h:
        return None
    if after_5m:
        return "5m"
    if before_1h:
        return "1h"
    return wanted


def _spots(body: dict[str, Any], system_tail: int) -> list[_Spot]:
    """The prompt's top-level blocks in prefix order, with running totals: text characters (a quarter
    of them: tokens from below) and blocks (nested ones counted: what the lookback walks)."""
    spots: list[_Spot] = []
    chars = blocks = 0
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            deferred = tool.get("defer_loading") is True  # not in the prefix, and never marked
            chars += 0 if deferred else _text_chars(tool)
            blocks += 1
            ttl = _ttl(tool.get("cache_control"))
            spots.append(_Spot(chars // 4, blocks, "tools", -1, tool, None, "", not deferred, not deferred, ttl))
    system = body.get("system")
    if isinstance(system, str) and system:
        chars += len(system)
        blocks += 1
        spots.append(_Spot(chars // 4, blocks, "system", -1, None, body, "system", True, True))
    elif isinstance(system, list):
        own = len(system) - system_tail
        for j, block in enumerate(system):
            if isinstance(block, dict):
                chars += _text_chars(block)
                blocks += 1
                spots.append(_block_spot(block, chars // 4, blocks, "system" if j < own else "tail", -1, None))
    messages = body.get("messages")
    for m, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        role = message.get("role")
        if isinstance(content, str):
            chars += len(content)
            blocks += 1
            ok = bool(content)
            spots.append(_Spot(chars // 4, blocks, "messages", m, None, message, "content", ok, ok, None, (), role))
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    chars += _text_chars(block)
                    blocks += 1
                    # _block_spot written out: this runs for every block of the conversation
                    kind = block.get("type")
                    target = kind not in NEVER_MARKED and not (kind == "text" and not block.get("text"))
                    cc = block.get("cache_control")
                    ttl = ("1h" if cc.get("ttl") == "1h" else "5m") if isinstance(cc, dict) else None
                    markable = target and kind in CACHEABLE_BLOCKS
                    spot = _Spot(chars // 4, 0, "messages", m, block, None, "", markable, target, ttl, (), role)
                    if (kind == "tool_result" and type(block.get("content")) is not str) or kind == "document":
                        _nest(spot, block)
                        blocks += spot.inner
                    spot.blocks = blocks
                    spots.append(spot)
    return spots


def _block_spot(block: dict[str, Any], tokens: int, blocks: int, section: str, message: int, role: Any) -> _Spot:
    kind = block.get("type")
    target = kind not in NEVER_MARKED and not (kind == "text" and not block.get("text"))
    markable = target and kind in CACHEABLE_BLOCKS
    ttl = _ttl(block.get("cache_control"))
    spot = _Spot(tokens, blocks, section, message, block, None, "", markable, target, ttl, (), role)
    if (kind == "tool_result" and type(block.get("content")) is not str) or kind == "document":  # str: none inside
        _nest(spot, block)
    return spot


def _nest(spot: _Spot, block: dict[str, Any]) -> None:
    """The blocks nested in a tool_result's or a document's content, and their breakpoints' TTLs."""
    inner = _inner(block)
    spot.inner = len(inner)
    spot.nested = tuple(t for b in inner if (t := _ttl(b.get("cache_control"))))


def _inner(block: dict[str, Any]) -> list[dict[str, Any]]:
    """Blocks nested in a block that may carry their own breakpoint: a tool_result's, a document's."""
    content = block.get("content") if block.get("type") == "tool_result" else None
    source = block.get("source") if block.get("type") == "document" else None
    if isinstance(source, dict):
        content = source.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _text_chars(node: Any) -> int:
    """Characters of every string in a JSON node, media data and cache_control left out: no more than
    its UTF-8 bytes, so a quarter of it undercounts tokens the way the minimum-length rule needs."""
    kind = type(node)
    if kind is str:
        return len(node)
    total = 0
    if kind is dict:
        if "data" in node and node.get("type") == "base64":
            return 0
        for v in node.values():
            kind = type(v)
            if kind is str:
                total += len(v)
            elif kind is dict or kind is list:
                total += _text_chars(v)
        cc = node.get("cache_control")  # counted above with the rest when it is an object: taken back out
        if type(cc) is dict or type(cc) is list:
            total -= _text_chars(cc)
    elif kind is list:
        for v in node:
            total += len(v) if type(v) is str else _text_chars(v)
    return total


def _ttl(cc: Any) -> str | None:
    """The TTL a cache_control asks for (None: none)."""
    if not isinstance(cc, dict):
        return None
    return "1h" if cc.get("ttl") == "1h" else "5m"
