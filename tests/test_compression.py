"""Context compression, technique by technique, on crafted inputs (levers/compression/)."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import orjson
import pytest

from paymaster.config import Compression, ConfigError, Html, Prune, Strip, ToolRule
from paymaster.levers.compression.html_text import html_to_text, looks_like_html
from paymaster.levers.compression.prune import BadPath, Stripping, parse_path, prune, select
from paymaster.levers.compression.results import Memo, Tally, compress_results, compress_text
from paymaster.levers.compression.strip import Boilerplate, parse_json, strip_base64

ON = Compression(enabled=True)


def search_json(n: int = 30) -> dict[str, Any]:
    return {
        "request_id": "req_8f2a",
        "etag": 'W/"abc123"',
        "items": [
            {
                "title": f"Result {i}",
                "url": f"https://example.com/{i}",
                "snippet": f"Snippet number {i} about widgets.",
                "thumbnail": None,
                "tags": [],
                "_links": {"self": {"href": f"https://api.example.com/r/{i}"}},
            }
            for i in range(n)
        ],
        "next_page_token": "CAoQAA",
        "total": n,
    }


# -- JSON pruning -----------------------------------------------------------------------------------


def test_prune_drops_noise_keys_and_empty_values() -> None:
    p = prune(search_json(3))
    assert p.value == {
        "items": [
            {"title": f"Result {i}", "url": f"https://example.com/{i}", "snippet": f"Snippet number {i} about widgets."}
            for i in range(3)
        ],
        "total": 3,
    }
    assert p.dropped_keys == 3 + 3 * 3  # request_id, etag, next_page_token; per item thumbnail, tags, _links


def test_prune_shortens_long_arrays_with_a_marker() -> None:
    p = prune({"rows": list(range(50))}, max_items=5)
    assert p.value == {"rows": [0, 1, 2, 3, 4, "[… 45 more items omitted]"]}
    assert p.dropped_items == 45


def test_prune_drops_url_templates_keeps_urls() -> None:
    p = prune({"html_url": "https://github.com/u", "events_url": "https://api.github.com/users/u/events{/privacy}"})
    assert p.value == {"html_url": "https://github.com/u"}


def test_keep_rules_path_syntax() -> None:
    v = search_json(3)
    assert parse_path("items[*].title") == ("items", None, "title")
    assert parse_path("data.price") == ("data", "price")
    assert parse_path("[*].name") == (None, "name")
    assert parse_path("items[2].url") == ("items", 2, "url")
    assert select(v, ["items[*].title", "total"]) == {
        "items": [{"title": "Result 0"}, {"title": "Result 1"}, {"title": "Result 2"}],
        "total": 3,
    }
    assert select(v, ["items[*].title", "items[1].url"])["items"][1] == {
        "title": "Result 1",
        "url": "https://example.com/1",
    }
    assert select({"data": {"price": 9.5, "sku": "x"}}, ["data.price"]) == {"data": {"price": 9.5}}
    assert select([{"name": "a", "x": 1}, {"name": "b"}], ["[*].name"]) == [{"name": "a"}, {"name": "b"}]


@pytest.mark.parametrize("bad", ["", "items[", "items[x]", "a..b"])
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(BadPath):
        parse_path(bad)


def test_keep_rule_that_matches_nothing_prunes_the_whole_value() -> None:
    p = prune(search_json(2), keep=("results[*].name",))
    assert not p.kept_by_rule
    assert "items" in p.value


def test_keep_rules_from_config_are_checked(tmp_path: Any) -> None:
    from paymaster.config import parse

    raw = {
        "ledger": str(tmp_path / "l.db"),
        "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K"}},
        "agents": {
            "a": {
                "key_sha256": "0" * 64,
                "model": "claude-haiku-4-5",
                "compression": {"prune": {"tools": {"search": {"keep": ["items[x].title"]}}}},
            }
        },
    }
    with pytest.raises(ConfigError, match=r"agents\.a\.compression\.prune\.tools\.search\.keep\[0\]"):
        parse(raw, env={"K": "k"})
    raw["agents"]["a"]["compression"] = {"prune": {"tools": {"search": {"keep": ["items[*].title"], "max_items": 3}}}}
    c = parse(raw, env={"K": "k"}).agents["a"].compression
    assert c.enabled and c.prune.tools["search"] == ToolRule(("items[*].title",), 3)
    raw["agents"]["a"]["compression"] = {"summarise": {"model": "gpt-4o"}}
    with pytest.raises(ConfigError, match=r"summarise\.model"):
        parse(raw, env={"K": "k"})
    raw["agents"]["a"]["compression"] = None  # `compression:` alone: the block with its defaults
    assert parse(raw, env={"K": "k"}).agents["a"].compression == Compression(enabled=True)
    del raw["agents"]["a"]["compression"]
    assert not parse(raw, env={"K": "k"}).agents["a"].compression.enabled  # off unless configured


# -- HTML -------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><title>Acme Widget 3000 – Specs</title>
<style>body { color: red }</style><script>var tracking = "abc";</script></head>
<body><nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
<main><h1>Acme Widget 3000</h1><p>The widget   weighs <b>2.4 kg</b> and
costs $149.</p><ul><li>Battery: 12 hours</li><li>Colour: slate</li></ul>
<table><tr><th>Model</th><th>Price</th></tr><tr><td>3000</td><td>$149</td></tr></table>
<img src="x.png" alt="front view"></main>
<footer>© 2026 Acme Corp. All rights reserved.</footer></body></html>"""


def test_html_to_readable_text() -> None:
    assert looks_like_html(PAGE)
    text = html_to_text(PAGE)
    assert text == (
        "# Acme Widget 3000 – Specs\n\n# Acme Widget 3000\nThe widget weighs 2.4 kg and costs $149.\n"
        "- Battery: 12 hours\n- Colour: slate\nModel | Price\n3000 | $149\n[image: front view]"
    )
    for gone in ("tracking", "color: red", "Home", "All rights reserved"):
        assert gone not in text


def test_html_inside_a_json_result_becomes_text() -> None:
    text = orjson.dumps({"id": 7, "body_html": PAGE}).decode()
    done = compress_text(text, None, ON)
    head, body = done.text.split("\n", 1)
    assert "1 HTML string reduced to text" in head
    assert orjson.loads(body) == {"id": 7, "body_html": html_to_text(PAGE)}
    assert "html" in {t for t, _, _ in done.removed}


def test_plain_text_with_a_tag_is_not_html() -> None:
    assert not looks_like_html("use <b> for bold, e.g. <b>this</b>")


# -- stripping --------------------------------------------------------------------------------------


def test_base64_blobs_become_a_placeholder_with_their_size() -> None:
    blob = base64.b64encode(bytes(range(256)) * 8).decode()
    out, n = strip_base64(f"before {blob} after")
    assert n == 1
    assert out == "before [base64 data omitted: 2,048 bytes] after"
    uri, _ = strip_base64(f"img: data:image/png;base64,{blob}")
    assert uri == "img: [image/png base64 data omitted: 2,048 bytes]"


def test_hex_digests_and_long_words_are_not_base64() -> None:
    digest = hashlib.sha512(b"x").hexdigest() * 4  # lower-case and digits only
    assert strip_base64(digest, 64) == (digest, 0)
    assert strip_base64("a" * 400) == ("a" * 400, 0)


def test_json_inside_strings_is_unwrapped() -> None:
    inner = {"price": 12, "currency": "EUR"}
    p = prune({"body": orjson.dumps(inner).decode(), "note": "{not json"}, max_items=None, strip=Stripping())
    assert p.value == {"body": inner, "note": "{not json"} and p.unwrapped == 1
    twice = orjson.dumps(orjson.dumps(inner).decode()).decode()  # a JSON string of JSON
    assert parse_json(twice) == inner


def test_repeated_long_strings_are_said_once() -> None:
    disclaimer = "Prices are indicative and may change without notice; check the vendor site."
    p = prune([{"d": disclaimer, "p": 1}, {"d": disclaimer, "p": 2}], strip=Stripping())
    v = p.value
    assert p.repeats == 1
    assert v[0]["d"] == disclaimer
    assert v[1]["d"].startswith("[repeated: Prices are indicative")


def test_boilerplate_lines_said_in_an_earlier_result_are_left_out() -> None:
    footer = "Cookie notice: we use cookies to improve your experience on this site."
    b = Boilerplate()
    first, n1 = b.strip(f"Page one fact: 42\n{footer}")
    second, n2 = b.strip(f"Page two fact: 17\n{footer}")
    assert (n1, n2) == (0, 1)
    assert footer in first
    assert second == "Page two fact: 17\n[1 repeated boilerplate line omitted]"


# -- one tool result, all techniques ----------------------------------------------------------------


def test_json_result_compressed_and_says_what_it_left_out() -> None:
    text = orjson.dumps(search_json(30), option=orjson.OPT_INDENT_2).decode()
    done = compress_text(text, None, ON)
    head, body = done.text.split("\n", 1)
    assert head.startswith("[gateway-compressed tool result:")
    assert "10 array items omitted" in head
    assert orjson.loads(body)["items"][-1] == "[… 10 more items omitted]"
    assert len(done.text) * 3 < len(text)
    assert {t for t, _, _ in done.removed} == {"strip", "prune"}


def test_per_tool_rule_keeps_only_named_fields() -> None:
    text = orjson.dumps(search_json(5)).decode()
    done = compress_text(text, ToolRule(("items[*].title",)), ON)
    assert orjson.loads(done.text.split("\n", 1)[1]) == {"items": [{"title": f"Result {i}"} for i in range(5)]}
    assert "kept only items[*].title" in done.text.split("\n", 1)[0]


def test_techniques_switch_off_one_by_one() -> None:
    text = orjson.dumps(search_json(30), option=orjson.OPT_INDENT_2).decode()
    off = Compression(enabled=True, prune=Prune(enabled=False), strip=Strip(enabled=False))
    assert compress_text(text, None, off).text == text
    strip_only = Compression(enabled=True, prune=Prune(enabled=False))
    assert "null" in compress_text(text, None, strip_only).text  # no pruning: empty values stay
    no_html = Compression(enabled=True, html=Html(enabled=False), strip=Strip(enabled=False))
    assert "<main>" in compress_text(PAGE * 3, None, no_html).text


def _anthropic_loop(result_text: str, tool: str = "search") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Find widgets."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"q": "w"}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": result_text},
                {"type": "text", "text": "Summarise them."},
            ],
        },
    ]


def test_results_in_both_apis_compressed_and_the_callers_request_left_as_sent() -> None:
    big = orjson.dumps(search_json(40), option=orjson.OPT_INDENT_2).decode()
    msgs = _anthropic_loop(big)
    sent = copy.deepcopy(msgs)
    tally = Tally()
    out = compress_results(msgs, "anthropic", ON, Memo(), tally)
    assert msgs == sent  # a fallback can still send the original
    assert out[2]["content"][0]["content"].startswith("[gateway-compressed")
    assert out[2]["content"][1] == sent[2]["content"][1]
    assert out[0] is msgs[0] and out[1] is msgs[1]
    assert tally.results == 1 and tally.removed["prune"] > 0

    oai = [
        {"role": "user", "content": "Find widgets."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": big}]},
    ]
    rule = Compression(enabled=True, prune=Prune(tools={"search": ToolRule(("items[*].url",))}))
    out = compress_results(oai, "openai", rule, Memo(), Tally())
    body = out[2]["content"][0]["text"].split("\n", 1)[1]
    assert orjson.loads(body)["items"][0] == {"url": "https://example.com/0"}  # the rule found its tool by call id


def test_small_results_and_images_are_sent_as_they_are() -> None:
    msgs = _anthropic_loop('{"ok": true}')
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo" * 100}}
    msgs[2]["content"][0]["content"] = [img]
    assert compress_results(msgs, "anthropic", ON, Memo(), Tally()) == msgs


def test_compression_is_stable_as_the_conversation_grows() -> None:
    """The same earlier results compress to the same bytes on every call: the cached prefix holds."""
    big = orjson.dumps(search_json(40), option=orjson.OPT_INDENT_2).decode()
    footer = "Terms of use apply to every result shown on this page, see the site."
    page = f"Widget facts: 7 sizes\n{footer}\n" + "x " * 600
    turn1 = _anthropic_loop(big)
    turn2 = [
        *turn1,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "fetch", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": page}]},
    ]
    a = compress_results(turn1, "anthropic", ON, Memo(), Tally())
    b = compress_results(turn2, "anthropic", ON, Memo(), Tally())
    assert orjson.dumps(b[: len(a)]) == orjson.dumps(a)


# -- properties: any result, any rule ---------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.sampled_from(["", "https://api.x/u{/id}", '{"a": [1, 2]}', base64.b64encode(bytes(range(256))).decode()])
)
json_values = st.recursive(
    _leaf,
    lambda kids: st.lists(kids, max_size=30) | st.dictionaries(st.text(max_size=10), kids, max_size=10),
    max_leaves=150,
)
RULES = [None, ToolRule(("items[*].title",)), ToolRule(("a.b", "[*].x", "[0]"), 2)]


@settings(max_examples=60, deadline=None)
@given(v=json_values, pretty=st.booleans(), rule=st.sampled_from(RULES))
def test_any_json_result_compresses_deterministically_and_never_grows(v: Any, pretty: bool, rule: Any) -> None:
    text = orjson.dumps(v, option=orjson.OPT_INDENT_2 if pretty else 0).decode()
    s = Compression(enabled=True, prune=Prune(min_tokens=0))
    a, b = compress_text(text, rule, s), compress_text(text, rule, s)
    assert a == b
    assert len(a.text.encode()) <= len(text.encode())
    if a.text != text:
        body = a.text.split("\n", 1)[1] if a.text.startswith("[gateway-compressed") else a.text
        orjson.loads(body)  # still one JSON value the model can read


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=3000) | st.builds(lambda a, b: f"<html><body><p>{a}</p><div>{b}</div></body></html>",
                                                  st.text(max_size=400), st.text(max_size=400)))  # fmt: skip
def test_any_text_result_compresses_without_error_and_never_grows(text: str) -> None:
    s = Compression(enabled=True, prune=Prune(min_tokens=0))
    done = compress_text(text, None, s)
    assert len(done.text.encode()) <= len(text.encode())
    assert compress_text(text, None, s) == done
