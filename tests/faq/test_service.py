"""FaqService: atomic swap on reload, last good index kept when a reload has errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.faq.service import FaqService


@pytest.fixture
def knowledge(tmp_path: Path, data_dir: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(data_dir / "good", target)
    return target


def test_not_loaded_until_reload(knowledge: Path) -> None:
    service = FaqService(knowledge)
    assert not service.loaded
    with pytest.raises(RuntimeError):
        service.match("passport", "en")


def test_reload_keeps_last_good_index_on_errors(knowledge: Path) -> None:
    service = FaqService(knowledge)
    assert service.reload() == []
    good_matcher = service.matcher
    assert service.match("How do I pay a traffic fine?", "en").outcome == "answer"

    traffic = knowledge / "faq" / "traffic.yaml"
    traffic.write_text(traffic.read_text().replace("</a>", ""), encoding="utf-8")
    problems = service.reload()
    assert any(p.severity == "error" and "never closed" in p.message for p in problems)
    assert service.matcher is good_matcher  # the broken load was not swapped in
    assert service.match("How do I pay a traffic fine?", "en").outcome == "answer"
    assert service.last_problems == problems

    traffic.unlink()
    assert service.reload() == []
    assert service.matcher is not good_matcher
    assert "traffic-fine" not in service.kb.entries
    best = service.match("How do I pay a traffic fine?", "en").best
    assert best is None or best.entry_id != "traffic-fine"


def test_warnings_do_not_block_a_reload(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "k"
    shutil.copytree(data_dir / "realfew", target)
    service = FaqService(target)
    problems = service.reload()
    assert problems and all(p.severity == "warning" for p in problems)
    assert service.loaded


async def test_async_reload_and_small_talk(knowledge: Path) -> None:
    service = FaqService(knowledge, answer_threshold=0.9)
    assert await service.areload() == []
    assert service.matcher.answer_threshold == 0.9
    assert service.small_talk("hello there", "en") == "greeting"
    assert service.small_talk("你好啊", "zh") == "greeting"
    assert service.small_talk("pay a fine", "en") is None
