"""Anthropic's documented prompt-caching rules, as an independent check of a Messages request body.

Written from the provider's documentation, not from the gateway's lever or its simulator, so a test
can hold either of them to it:

- platform.claude.com/docs/en/build-with-claude/prompt-caching ("Automatic caching" and its "Edge
  cases", "How automatic prefix checking works", "What can be cached", "What cannot be cached",
  "Mixing different TTLs");
- platform.claude.com/docs/en/agents-and-tools/tool-use/tool-use-with-prompt-caching ("defer_loading
  and cache preservation": deferred tools are not in the prefix, and may not carry cache_control);
- anthropics/skills skills/claude-api/shared/prompt-caching.md ("Automatic vs explicit breakpoints",
  "Pre-warming the cache": the `max_tokens: 0` request and the combinations it is refused with).

    from cache_rules import violations, breakpoints
    violations(body)   # → [] for a request the API accepts, else one sentence per broken rule
    breakpoints(body)  # → [(path, "5m" | "1h"), ...] in prefix order, the automatic one included

The rules:
1. `cache_control` is `{"type": "ephemeral"}` with an optional `ttl` of "5m" (the default) or "1h".
2. It may not go on a thinking or redacted_thinking block, on an empty text block, or on a tool
   with `defer_loading: true`.
3. At most 4 breakpoints per request, counting blocks nested in a tool_result (or a document's
   content) and the automatic one.
4. Automatic caching (top-level `cache_control`) lands on the last block that may carry one,
   walking backwards past those that may not. If that block already has `cache_control` with the
   same TTL, it adds nothing; with a different TTL the request is refused; with 4 explicit
   breakpoints already, it is refused.
5. Processed in the order tools → system → messages, a 1-hour breakpoint may not come after a
   5-minute one.
6. `max_tokens: 0` (cache pre-warming) is refused with `stream: true`, `thinking.type: "enabled"`,
   `output_config.format`, or a `tool_choice` of type "tool" or "any".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LIMIT = 4
TTLS = ("5m", "1h")
NEVER_MARKED = ("thinking", "redacted_thinking")


@dataclass
class Spot:
    """A block of the prompt, in prefix order: where it is and what it says about caching."""

    path: str
    control: Any  # its cache_control (None: none)
    eligible: bool  # may it carry cache_control at all
    why: str  # if not, why not
    top: bool  # a top-level block (tool, system block, message block), not one nested in another


def _spots(body: dict[str, Any]) -> list[Spot]:
    out: list[Spot] = []
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict):
            continue
        deferred = tool.get("defer_loading") is True
        out.append(Spot(f"tools.{i}", tool.get("cache_control"), not deferred, "a defer_loading tool", True))
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if isinstance(block, dict):
                out.append(_block(block, f"system.{j}"))
    elif isinstance(system, str) and system:
        out.append(Spot("system", None, True, "", True))
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            out.append(Spot(f"messages.{i}.content", None, bool(content), "an empty text block", True))
            continue
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict):
                continue
            for k, inner in enumerate(_nested(block)):  # a block's content comes before its own end
                nested = _block(inner, f"messages.{i}.content.{j}.content.{k}")
                nested.top = False
                out.append(nested)
            out.append(_block(block, f"messages.{i}.content.{j}"))
    return out


def _nested(block: dict[str, Any]) -> list[dict[str, Any]]:
    if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
        return [b for b in block["content"] if isinstance(b, dict)]
    source = block.get("source")
    if block.get("type") == "document" and isinstance(source, dict) and isinstance(source.get("content"), list):
        return [b for b in source["content"] if isinstance(b, dict)]
    return []


def _block(block: dict[str, Any], path: str) -> Spot:
    kind = block.get("type")
    if kind in NEVER_MARKED:
        return Spot(path, block.get("cache_control"), False, f"a {kind} block", True)
    if kind == "text" and block.get("text") == "":
        return Spot(path, block.get("cache_control"), False, "an empty text block", True)
    return Spot(path, block.get("cache_control"), True, "", True)


def _ttl(control: Any) -> str | None:
    """The TTL a valid cache_control asks for; None when it is malformed."""
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        return None
    if set(control) - {"type", "ttl"}:
        return None
    ttl = control.get("ttl", "5m")
    return ttl if ttl in TTLS else None


def automatic_target(body: dict[str, Any]) -> str | None:
    """Where a top-level cache_control lands: the last top-level block that may carry one."""
    for spot in reversed(_spots(body)):
        if spot.top and spot.eligible:
            return spot.path
    return None


def breakpoints(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Every breakpoint of the request in prefix order, as (path, TTL); the automatic one included."""
    found: list[tuple[str, str]] = []
    for spot in _spots(body):
        if spot.control is not None:
            found.append((spot.path, _ttl(spot.control) or "?"))
    top = body.get("cache_control")
    if top is not None:
        target = automatic_target(body)
        if target is not None and all(path != target for path, _ in found):
            order = [s.path for s in _spots(body)]
            found.append((target, _ttl(top) or "?"))
            found.sort(key=lambda f: order.index(f[0]))
    return found


def violations(body: dict[str, Any]) -> list[str]:
    """Every documented caching rule the request breaks (empty: the API accepts it, as far as caching goes)."""
    errors: list[str] = []
    spots = _spots(body)
    explicit = [s for s in spots if s.control is not None]
    for s in explicit:
        if _ttl(s.control) is None:
            errors.append(f"{s.path}: cache_control must be {{type: ephemeral, ttl?: 5m|1h}}, got {s.control!r}")
        if not s.eligible:
            errors.append(f"{s.path}: cache_control on {s.why}")
    top = body.get("cache_control")
    count = len(explicit)
    if top is not None:
        if _ttl(top) is None:
            errors.append(f"cache_control: must be {{type: ephemeral, ttl?: 5m|1h}}, got {top!r}")
        if len(explicit) >= LIMIT:
            errors.append(f"automatic caching with {len(explicit)} explicit breakpoints: no slot left")
        target = automatic_target(body)
        on_target = next((s for s in explicit if s.path == target), None)
        if on_target is not None and _ttl(on_target.control) != _ttl(top):
            errors.append(
                f"automatic caching ttl {_ttl(top)} on {target}, which already has cache_control "
                f"with ttl {_ttl(on_target.control)}"
            )
        if target is not None and on_target is None:
            count += 1
    if count > LIMIT:
        errors.append(f"{count} breakpoints, at most {LIMIT} (nested and automatic ones included)")
    seen_5m = None
    for path, ttl in breakpoints(body):
        if ttl == "5m" and seen_5m is None:
            seen_5m = path
        if ttl == "1h" and seen_5m is not None:
            errors.append(f"{path}: a 1h breakpoint after the 5m one at {seen_5m}")
    if body.get("max_tokens") == 0:
        errors += _prewarm(body)
    return errors


def _prewarm(body: dict[str, Any]) -> list[str]:
    errors = []
    if body.get("stream") is True:
        errors.append("max_tokens 0 with stream: true")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        errors.append("max_tokens 0 with thinking enabled")
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("format") is not None:
        errors.append("max_tokens 0 with output_config.format")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("tool", "any"):
        errors.append(f"max_tokens 0 with tool_choice {choice.get('type')}")
    return errors
