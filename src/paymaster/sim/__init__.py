"""A fake Anthropic- and OpenAI-compatible provider, for tests, the demo and benchmarks.

    from paymaster.sim import Simulator
    from paymaster.server import ServerThread

    sim = Simulator(latency_ms=0, token_delay_ms=0, default_output_tokens=50)
    with ServerThread(sim.app) as srv:
        anthropic.Anthropic(base_url=srv.url, api_key="k")       # /v1/messages
        openai.OpenAI(base_url=srv.url + "/v1", api_key="k")      # /v1/chat/completions
    with ServerThread(sim.app, tls=True) as srv:                # https, a CA made at start
        anthropic.Anthropic(base_url=srv.url, api_key="k",
                            http_client=anthropic.DefaultHttpxClient(verify=srv.tls.client_context()))
    sim.inject("429", count=2, model="claude-x", retry_after=0)
    sim.requests[-1]["body"]

`paymaster sim --tls [--ca-out PATH]` does the same from the command line and prints the CA's path.

Answers are deterministic (unless `sim.sampled = True`: then the same request is answered differently
each time, as a sampled model answers); `[sim:tokens=N]`, `[sim:stop]` and `[sim:tool=NAME]` in the last user message
steer them (see `paymaster.sim.text`). Tool directives are a script, one step per turn: `[sim:tool=a]
[sim:tool=b]` calls `a`, then `b` once `a`'s result is sent back, then answers in text.

Prompts are cached as the providers cache them (see `paymaster.sim.cache`): Anthropic at
`cache_control` breakpoints, OpenAI automatically from 1,024 tokens, with the usage fields to match.
Entries expire on the simulator's clock, which tests may replace: `Simulator(clock=fake_clock)`.
"""

from .app import Simulator
from .runner import main
from .tokens import count_tokens

__all__ = ["Simulator", "count_tokens", "main"]
