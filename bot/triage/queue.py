"""The models' queue: the transformer's work, most crisis-like first, a few messages per call.

In a surge hundreds of messages need the contextual model (~12-25 ms each, one at a time: its
engine is not re-entrant). In arrival order a message that only the model can recognise as a
crisis would wait behind every question sent before it. Here each message is first ranked by
the cheap models (the word vectors, ~0.1 ms, no lock) and queued by that score; one task feeds
the transformer the highest-scored messages, `BATCH` at a time in one call, in a worker thread.
So the wait of a crisis-like message is bounded by one batch, not by the length of the queue.
A message the cheap models rule out (``skip_below`` in the examples files: most citizens'
questions) is never queued: its second opinion is the rules' level, at once.

The queue belongs to the event loop that uses it (a test suite runs many loops one after
another; a new loop starts a new, empty queue).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from bot.triage.model import Shortlists

# A level as the classifier decides it (``bot.triage.TriageResult``).
R = TypeVar("R", bound=Hashable)


class Reader(Protocol[R]):
    """What the queue asks of the classifier (``bot.triage.Triage``)."""

    def rank_many(self, texts: list[str]) -> list[tuple[Shortlists, float]]: ...

    def needs_models(self, text: str, ranked: Shortlists) -> bool: ...

    def decide_many(self, items: list[tuple[str, R, Shortlists]]) -> list[R]: ...


# Messages per call of the transformer: a larger batch saves a little time per message (about
# 14 -> 12 ms here) but is what a newly arrived crisis-like message may have to wait for.
BATCH = 4
# Messages this long (together) are ranked in a worker thread (many sentences to embed).
_RANK_INLINE_BELOW = 500
# Judgments remembered by text (the intake's and the handler's question are one).
_REMEMBERED = 4096


@dataclass(order=True)
class _Job(Generic[R]):
    priority: float
    seq: int
    text: str = field(compare=False)
    decided: R = field(compare=False)
    ranked: Shortlists = field(compare=False)
    future: asyncio.Future[R] = field(compare=False)


class ModelQueue(Generic[R]):
    """Second opinions for one classifier, ordered by how crisis-like the cheap models found
    each message."""

    def __init__(self, triage: Reader[R]) -> None:
        self.triage = triage
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: list[_Job[R]] = []
        self._seq = itertools.count()
        self._runner: asyncio.Task[None] | None = None
        # text -> its judgment, queued, running or recently done: the intake asks on arrival
        # and the handler asks again later; the transformer reads the text once.
        self._known: OrderedDict[tuple[str, R], asyncio.Future[R]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    def known(self, text: str, decided: R) -> R | None:
        """The second opinion if it is ready (asked before and answered), else None."""
        future = self._known.get((text, decided))
        if (
            future is None
            or self._loop is not asyncio.get_running_loop()
            or not future.done()
            or future.exception() is not None
        ):
            return None
        return future.result()

    async def second_opinion(self, text: str, decided: R) -> R:
        """The models' level for a message the rules found neither crisis nor emergency."""
        return (await self.second_opinions([(text, decided)]))[0]

    async def second_opinions(self, items: list[tuple[str, R]]) -> list[R]:
        """:meth:`second_opinion` for several messages (one ranking call for them all)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._jobs, self._runner = loop, [], None
            self._known.clear()
        futures = []
        new: list[tuple[str, R, asyncio.Future[R]]] = []
        for text, decided in items:
            key = (text, decided)
            known = self._known.get(key)
            if known is None or (known.done() and known.exception() is not None):
                known = self._known[key] = loop.create_future()
                new.append((text, decided, known))
            futures.append(known)
        while len(self._known) > _REMEMBERED:
            self._known.popitem(last=False)
        if new:
            texts = [text for text, _, _ in new]
            if sum(len(t) for t in texts) < _RANK_INLINE_BELOW:
                ranks = self.triage.rank_many(texts)
            else:
                ranks = await asyncio.to_thread(self.triage.rank_many, texts)
            for (text, decided, future), (ranked, risk) in zip(new, ranks, strict=True):
                if not self.triage.needs_models(text, ranked):
                    # The cascade: every file's cheap model ruled it out; no transformer turn.
                    future.set_result(decided)
                    continue
                heapq.heappush(
                    self._jobs, _Job(-risk, next(self._seq), text, decided, ranked, future)
                )
            if self._jobs and (self._runner is None or self._runner.done()):
                self._runner = loop.create_task(self._run(), name="triage-models")
        return list(await asyncio.gather(*(asyncio.shield(f) for f in futures)))

    async def _run(self) -> None:
        while self._jobs:
            batch = [heapq.heappop(self._jobs) for _ in range(min(BATCH, len(self._jobs)))]
            batch = [job for job in batch if not job.future.done()]
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
