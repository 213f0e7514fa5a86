"""Loading and validating knowledge files: every problem with its file and line."""

from __future__ import annotations

from pathlib import Path

from bot.faq.loader import load_knowledge
from bot.faq.models import Problem


def found(problems: list[Problem]) -> set[tuple[str, int | None, str]]:
    return {(Path(p.file).name, p.line, p.severity) for p in problems}


def has(
    problems: list[Problem], file: str, line: int, fragment: str, severity: str = "error"
) -> bool:
    return any(
        Path(p.file).name == file
        and p.line == line
        and p.severity == severity
        and fragment in p.message
        for p in problems
    )


def test_good_knowledge_loads_without_problems(data_dir: Path) -> None:
    kb, problems = load_knowledge(data_dir / "good")
    assert problems == []
    assert set(kb.entries) == {"passport-apply", "passport-lost", "traffic-fine"}
    assert kb.languages == {"en", "zh"}
    assert kb.entries["traffic-fine"].clarification is True
    assert kb.entries["passport-apply"].links[0].url == "https://example.org/services"
    assert "en" in kb.synonyms
    assert kb.smalltalk["greeting"]["zh"] == ["你好"]


def test_entry_text_falls_back_and_says_so(data_dir: Path) -> None:
    kb, _ = load_knowledge(data_dir / "good")
    entry = kb.entries["passport-lost"]
    zh = entry.text("zh")
    assert (zh.lang, zh.is_fallback) == ("zh", False)
    assert zh.question == "护照丢了怎么办？"
    fr = entry.text("fr")
    assert (fr.requested, fr.lang, fr.is_fallback) == ("fr", "en", True)
    assert fr.question.startswith("I lost my passport")


def test_yaml_syntax_error_points_at_the_broken_line(data_dir: Path) -> None:
    kb, problems = load_knowledge(data_dir / "syntax")
    assert kb.entries == {}
    assert has(problems, "broken.yaml", 5, "YAML syntax error")


def test_every_problem_is_reported_with_file_and_line(data_dir: Path) -> None:
    _, problems = load_knowledge(data_dir / "problems")
    expected = [
        ("a.yaml", 9, "unescaped '&'"),
        ("a.yaml", 14, "tag <div> is not supported"),
        ("a.yaml", 16, "missing language 'zh'"),
        ("a.yaml", 21, "javascript:alert(1)"),
        ("a.yaml", 21, "<b> is never closed"),
        ("a.yaml", 25, "unknown field 'colour'"),
        ("a.yaml", 27, "2 alternatives, want >= 3 (sample content"),
        ("a.yaml", 5, "related id 'ghost' does not exist"),
        ("a.yaml", 20, "'Dog registration!' is also a phrasing of entry alpha"),
        ("b.yaml", 2, "duplicate id 'alpha' (first at"),
        ("b.yaml", 16, "duplicate key 'category'"),
        ("b.yaml", 20, "answer is 4100 characters after rendering"),
    ]
    for file, line, fragment in expected:
        assert has(problems, file, line, fragment), (file, line, fragment, problems)
    assert len(problems) == len(expected)
    assert all(p.severity == "error" for p in problems)


def test_shortfalls_in_real_content_are_warnings(data_dir: Path) -> None:
    _, problems = load_knowledge(data_dir / "realfew")
    assert found(problems) == {("real.yaml", 6, "warning")}
    assert sorted(p.message.split(": ")[1] for p in problems) == [
        "1 alternatives, want >= 3",
        "1 tests, want >= 2",
    ]


def test_required_languages_are_configurable(data_dir: Path) -> None:
    _, problems = load_knowledge(data_dir / "good", required_langs=("en", "fr"))
    missing = [p for p in problems if "missing language 'fr'" in p.message]
    assert len(missing) == 3
    _, none_required = load_knowledge(data_dir / "good", required_langs=())
    assert none_required == []


def test_problem_prints_as_file_line_severity_message() -> None:
    assert str(Problem("a.yaml", 3, "error", "boom")) == "a.yaml:3: error: boom"
    assert str(Problem("a.yaml", None, "warning", "w")) == "a.yaml: warning: w"


def test_missing_directory_and_bad_synonyms(tmp_path: Path) -> None:
    _, problems = load_knowledge(tmp_path / "nope")
    assert [p.message for p in problems] == ["knowledge directory not found"]
    (tmp_path / "faq").mkdir()
    (tmp_path / "synonyms").mkdir()
    (tmp_path / "synonyms" / "en.yaml").write_text("groups:\n  - [yes, no]\n  - [a, b]\n")
    _, problems = load_knowledge(tmp_path)
    assert has(problems, "en.yaml", 2, "must be a list of strings")
    assert any("no FAQ files" in p.message for p in problems)


def test_the_longest_entry_id_fits_a_button_with_the_longest_question_id() -> None:
    # Telegram refuses callback data over 64 bytes; question ids are random 63-bit numbers.
    from bot.db.models import random_id
    from bot.faq.models import ENTRY_ID_MAX
    from handlers.callbacks import FeedbackCb, HumanCb, PickCb

    longest = 2**63 - 1
    assert random_id() <= longest
    for data in (
        PickCb(query_id=longest, entry_id="x" * ENTRY_ID_MAX),
        FeedbackCb(query_id=longest, up=False),
        HumanCb(query_id=longest),
    ):
        assert len(data.pack().encode()) <= 64
