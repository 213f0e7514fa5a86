"""The models' queue: a crisis-like message is judged before the questions queued ahead of it,
and a batch gives every message the same verdict as asking one at a time."""

from __future__ import annotations

import asyncio

from bot.triage import Triage, TriageResult
from bot.triage.queue import BATCH

NORMAL = TriageResult("normal", ())
ONLY_THE_MODEL = "tonight I'm going to make the pain stop for good"


async def test_a_crisis_like_message_does_not_wait_behind_questions(triage: Triage) -> None:
    assert triage.rules(ONLY_THE_MODEL).level == "normal"  # only the model can tell
    order: list[tuple[str, str]] = []

    async def ask(text: str, tag: str) -> None:
        result = await triage.queue.second_opinion(text, NORMAL)
        order.append((tag, result.level))

    # Questions the word vectors cannot rule out (the cascade answers the others at once).
    texts = [f"where can I pay a traffic fine from street {n}" for n in range(40)]
    assert all(triage.needs_models(text, triage.rank(text)[0]) for text in texts)
    questions = [asyncio.create_task(ask(text, "question")) for text in texts]
    await asyncio.sleep(0)  # every question is queued (and the first batch taken)
    crisis = asyncio.create_task(ask(ONLY_THE_MODEL, "crisis"))
    await asyncio.gather(*questions, crisis)
    tags = [tag for tag, _ in order]
    # Behind at most the batch already with the model, and its own batch's neighbours.
    assert tags.index("crisis") < 2 * BATCH, tags
    assert ("crisis", "crisis") in order
    assert sorted(level for tag, level in order if tag == "question") == ["normal"] * 40


def test_a_batch_decides_as_one_at_a_time(triage: Triage) -> None:
    texts = [
        ONLY_THE_MODEL,
        "where do I renew my driving licence",
        "I gave my dog to my neighbour and told her it's for good",
        "我想问一下护照怎么办",
        "Everything is fine. " * 40 + "I won't be here to see the new year.",
    ]
    together = triage.decide_many([(t, NORMAL, triage.rank(t)[0]) for t in texts])
    alone = [triage.second_opinion(t, NORMAL) for t in texts]
    assert together == alone
    assert together[0].level == "crisis"
