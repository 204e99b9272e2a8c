"""Which JSON library on the hot path: the standard library's `json` or `orjson`.

    python bench/json_choice.py

Every call through the gateway decodes the agent's request, encodes it for the provider and decodes
the provider's answer. Prints µs per round (loads + dumps + loads) for a small and a ~40 KB request.
"""

from __future__ import annotations

import json
import timeit

import orjson

SMALL = {"model": "claude-haiku-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Summarise."}]}
LARGE = {
    **SMALL,
    "system": "Policy clause: answer briefly and cite the source. " * 800,
    "messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 40} for i in range(20)],
}
ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "word " * 200}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1200, "output_tokens": 200},
}


def main() -> None:
    answer_json = json.dumps(ANSWER)
    print(f"{'payload':8} {'json µs':>9} {'orjson µs':>10}")
    for name, body in (("small", SMALL), ("40 KB", LARGE)):
        raw = json.dumps(body)
        n = 2000

        def with_json(raw: str = raw) -> None:
            json.loads(json.dumps(json.loads(raw)))
            json.loads(answer_json)

        def with_orjson(raw: str = raw) -> None:
            orjson.loads(orjson.dumps(orjson.loads(raw)))
            orjson.loads(answer_json)

        t_json = timeit.timeit(with_json, number=n) / n * 1e6
        t_orjson = timeit.timeit(with_orjson, number=n) / n * 1e6
        print(f"{name:8} {t_json:>9.1f} {t_orjson:>10.1f}")


if __name__ == "__main__":
    main()
