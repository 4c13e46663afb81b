"""One generation under way in the engine, streamed a few tokens at a time.

The engine interleaves its streams (core.engine `_generate`): each `advance()` makes one token;
the first token is sent at once (the text starts to show without delay), then an event only
every EMIT_EVERY seconds. Each event makes the app draw, and on a machine whose cores the
engine's threads fill, drawing takes a core from them: on 2 cores with the baby GPT the
Generate pane made 0.85-0.91 of headless tokens/s at 33 events a second, 0.93-0.96 at 4, and
0.95-1.0 with none but the first and last (bench/ui.py; the engine alone is as fast as
headless). Once the pane stopped laying the screen out during a generation, 4 a second still
gave 0.93-0.955 (the app 4 % of a core, a frame 4-6 ms of it) and 2 a second 0.96-0.98 (3 %).
Half-second updates are also half the bytes an SSH link carries.
"""

from __future__ import annotations

import time

from core import messages as msg

EMIT_EVERY = 0.5  # seconds between Generated events of a stream (see above)


class GenerationStream:
    """One generation under way: its text not yet reported, its tokens, and the time spent
    making them (tokens/s is per stream, whatever else ran between its tokens)."""

    def __init__(self, command: msg.Generate, pieces) -> None:
        self.command = command
        self.pieces = pieces
        self.pending = ""
        self.tokens = 0
        self.busy = 0.0
        self.last_emit = -EMIT_EVERY  # the first token goes out at once
        self.done = False

    @classmethod
    def open(cls, workbench, c: msg.Generate) -> GenerationStream:
        from core.generate import Sampling
        from core.session import session_from_dict

        # Checked like a session's [generate] (one line naming every bad field), not left to
        # fail inside the sampler.
        sampling = Sampling.from_config(session_from_dict({"generate": {
            "max_tokens": c.max_tokens, "temperature": c.temperature, "top_k": c.top_k,
            "top_p": c.top_p, "repetition_penalty": c.repetition_penalty, "stop": list(c.stop),
            "seed": c.seed}}).generate)
        return cls(c, workbench.generate(c.prompt, sampling, c.model))

    def due(self) -> bool:
        return time.perf_counter() - self.last_emit >= EMIT_EVERY

    def advance(self) -> msg.Generated | None:
        """Make one token; the event to send now, if one is due."""
        t0 = time.perf_counter()
        piece = next(self.pieces, None)
        self.busy += time.perf_counter() - t0
        if piece is None:
            return self.finish()
        self.pending += piece
        self.tokens += 1
        if not self.due():
            return None
        return self._event(done=False)

    def finish(self) -> msg.Generated:
        self.done = True
        return self._event(done=True)

    def _event(self, done: bool) -> msg.Generated:
        c = self.command
        event = msg.Generated(self.pending, self.tokens, self.tokens / max(self.busy, 1e-9),
                              done=done, model=c.model, request_id=c.request_id)
        self.pending, self.last_emit = "", time.perf_counter()
        return event
