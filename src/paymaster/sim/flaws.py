"""A model that is sometimes wrong: per-model rates of answers that fail a structural check.

    sim.flaws.set("claude-haiku-4-5", 0.3)   # 30 % of that model's structured answers are spoiled
    sim.flaws.set("claude-haiku-4-5", 0.0)   # back to always well-formed

Only answers that carry structure are spoiled, the way a weaker model gets them wrong:
- a tool call keeps its tool but its input is `{}` (missing every required property);
- a JSON answer (`response_format` / `output_config.format`) comes back as prose around the JSON.
Which requests are spoiled is a deterministic draw from the request's seed and the model, so a
workload replayed against the same rates fails on the same requests (both tiers see the same
prompt; only the model named in `set` is spoiled). The wire format is unchanged: a spoiled answer
is a well-formed response a provider could send.
"""

from __future__ import annotations

import random
from dataclasses import replace

from .answer import Answer, Ask

__all__ = ["Flaws"]


class Flaws:
    def __init__(self) -> None:
        self.rates: dict[str, float] = {}

    def set(self, model: str, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        self.rates[model] = rate

    def clear(self) -> None:
        self.rates.clear()

    def apply(self, ask: Ask, said: Answer) -> Answer:
        rate = self.rates.get(ask.model, 0.0)
        if not rate or random.Random(f"{ask.seed}:{ask.model}").random() >= rate:
            return said
        if said.tool is not None and said.stop == "tool":
            return replace(said, arguments="{}")
        if (ask.json or ask.json_schema is not None) and said.stop == "end":
            return replace(said, text="Here is the JSON you asked for: " + said.text)
        return said
