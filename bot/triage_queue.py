"""The models' queue: the transformer's work, most crisis-like first, a few messages per call.

In a surge hundreds of messages need the contextual model (~12-25 ms each, one at a time: its
engine is not re-entrant). In arrival order a message that only the model can recognise as a
crisis would wait behind every question sent before it. Here each message is first ranked by
the cheap models (the word vectors, ~0.1 ms, no lock) and queued by that score; one task feeds
the transformer the highest-scored messages, `BATCH` at a time in one call, in a worker thread.
So the wait of a crisis-like message is bounded by one batch, not by the length of the queue.

The queue belongs to the event loop that uses it (a test suite runs many loops one after
another; a new loop starts a new, empty queue).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.triage import Triage, TriageResult

# Messages per call of the transformer: a larger batch saves a little time per message (about
# 14 -> 12 ms here) but is what a newly arrived crisis-like message may have to wait for.
BATCH = 4
# Messages this long are ranked in a worker thread (they have many sentences to embed).
_RANK_INLINE_BELOW = 500


@dataclass(order=True)
class _Job:
    priority: float
    seq: int
    text: str = field(compare=False)
    decided: TriageResult = field(compare=False)
    ranked: dict[str, tuple[str, ...]] = field(compare=False)
    future: asyncio.Future[TriageResult] = field(compare=False)


class ModelQueue:
    """Second opinions for one classifier, ordered by how crisis-like the cheap models found
    each message."""

    def __init__(self, triage: Triage) -> None:
        self.triage = triage
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._runner: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    async def second_opinion(self, text: str, decided: TriageResult) -> TriageResult:
        """The models' level for a message the rules found neither crisis nor emergency."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._jobs, self._runner = loop, [], None
        if len(text) < _RANK_INLINE_BELOW:
            ranked, risk = self.triage.rank(text)
        else:
            ranked, risk = await asyncio.to_thread(self.triage.rank, text)
        job = _Job(-risk, next(self._seq), text, decided, ranked, loop.create_future())
        heapq.heappush(self._jobs, job)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name="triage-models")
        return await job.future

    async def _run(self) -> None:
        while self._jobs:
            batch = [heapq.heappop(self._jobs) for _ in range(min(BATCH, len(self._jobs)))]
            batch = [job for job in batch if not job.future.done()]  # the asker gave up
            if not batch:
                continue
            items = [(job.text, job.decided, job.ranked) for job in batch]
            try:
                results = await asyncio.to_thread(self.triage.decide_many, items)
            except Exception as exc:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
