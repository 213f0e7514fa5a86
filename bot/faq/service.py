"""FaqService: holds the current knowledge base and matcher, and swaps them on reload."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import repo
from bot.db.models import Role
from bot.faq.loader import load_knowledge, shipped_dir
from bot.faq.matcher import Matcher, MatchResult
from bot.faq.models import KnowledgeBase, Problem
from bot.faq.smalltalk import SmallTalk, SmallTalkDetector


@dataclass(frozen=True)
class _State:
    kb: KnowledgeBase
    matcher: Matcher
    smalltalk: SmallTalkDetector


class FaqService:
    """Knowledge holder: ``reload()`` builds a new index and swaps it in one assignment.

    A load with error-level problems never replaces a working index: the last good one stays
    and the problems are returned so an operator can fix the files.
    """

    def __init__(
        self,
        path: Path,
        required_langs: Iterable[str] = ("en", "zh"),
        **matcher_options: Any,
    ) -> None:
        self.path = Path(path)
        self.required_langs = tuple(required_langs)
        self.matcher_options = matcher_options
        self._state: _State | None = None
        self.last_problems: list[Problem] = []

    @property
    def loaded(self) -> bool:
        """True once a load without errors has happened."""
        return self._state is not None

    def _require(self) -> _State:
        state = self._state
        if state is None:
            raise RuntimeError("knowledge not loaded: call FaqService.reload() first")
        return state

    @property
    def kb(self) -> KnowledgeBase:
        """The knowledge base currently served."""
        return self._require().kb

    @property
    def matcher(self) -> Matcher:
        """The matcher currently served."""
        return self._require().matcher

    def reload(self) -> list[Problem]:
        """Load the directory; swap the index in if there are no errors; return all problems."""
        kb, problems = load_knowledge(self.path, self.required_langs)
        self.last_problems = problems
        if any(p.severity == "error" for p in problems):
            return problems
        options = {"shipped": shipped_dir(self.path), **self.matcher_options}
        state = _State(kb, Matcher(kb, **options), SmallTalkDetector(kb.smalltalk))
        # One attribute assignment: concurrent readers see the old or the new state, never a mix.
        self._state = state
        return problems

    async def areload(self) -> list[Problem]:
        """``reload`` in a worker thread so the event loop keeps serving citizens."""
        return await asyncio.to_thread(self.reload)

    async def reload_by(
        self, session: AsyncSession, *, actor_id: int | None, roles: Set[Role]
    ) -> list[Problem] | None:
        """/reload: an admin's reload, audited; the error-level problems (empty: the new
        knowledge is served). None when `roles` do not allow it (refused, audited too). The
        audit rows are written with the caller's unit of work."""
        if Role.ADMIN not in roles:
            repo.audit(session, "knowledge.reload.refused", actor_id=actor_id)
            return None
        problems = await self.areload()
        errors = [p for p in problems if p.severity == "error"]
        repo.audit(session, "knowledge.reload", actor_id=actor_id, errors=len(errors))
        return errors

    def match(self, text: str, lang: str) -> MatchResult:
        """Match a question against the current index."""
        return self._require().matcher.match(text, lang)

    def small_talk(self, text: str, lang: str) -> SmallTalk | None:
        """Small-talk kind of a whole message, using the loaded phrase lists."""
        return self._require().smalltalk.detect(text, lang)
