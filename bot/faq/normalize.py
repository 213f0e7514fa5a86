"""Text normalisation, script detection and tokenisation for FAQ matching.

Chinese has no spaces between words. We index Chinese as overlapping character unigrams and
bigrams instead of running a word segmenter:

* no new dependency (jieba is not installed, its dictionary load costs ~1 s and 50 MB);
* a segmenter's mistakes are unrecoverable (a wrongly split word never matches), while bigrams
  degrade gracefully: a typo or an unknown name only loses the two or three grams it touches;
* character-bigram BM25 is the classic strong baseline for Chinese retrieval (most content
  words are two characters), and unigrams keep single-character words (病, 咳, 药) matchable.

English words are lower-cased, stop words are dropped and a small suffix stripper maps
inflections to one stem (``applying``/``applied``/``applies`` -> ``appli``), so paraphrases that
change word forms still share terms.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_REPEAT_RE = re.compile(r"(\D)\1{2,}")
_SPACE_RE = re.compile(r"\s+")

# Word characters that are not CJK ideographs; digits and letters of any alphabet.
_WORD_RE = re.compile(r"[^\W_]+")

# A small table of Traditional -> Simplified characters common in public-service questions,
# so 護照/护照 and 證件/证件 meet. A full table (OpenCC) would be a dependency; this covers the
# frequent characters and is cheap to extend.
_T2S = str.maketrans(
    "護證機關號碼辦續報警電話駕駛車輛錢遺失戶籍絡網絡區縣請問麼為這個們時間樣應該還會"
    "說過對開發給裡嗎詐騙險簽註貨銀幣兒醫療診斷藥針檢測體溫視頻聯繫處理條風歲學習價",
    "护证机关号码办续报警电话驾驶车辆钱遗失户籍络网络区县请问么为这个们时间样应该还会"
    "说过对开发给里吗诈骗险签注货银币儿医疗诊断药针检测体温视频联系处理条风岁学习价",
)

_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by did do does doing down during each few for from further had has
    have having he her here hers herself him himself his i if in into is it its itself just me
    more most my myself nor of off on once only or other our ours out over own same she so some
    such than that the their theirs them themselves then there these they this those through to
    too under until up very was we were while whom you your yours yourself yourselves im ive id
    s t please hi hello thanks thank tell know want wanted need like also anyone someone
    something u ur
"""
EN_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
# Question words (what, where, how, who, why, when, which, can, should, will, not) are NOT stop
# words: "Where can I get tested?" and "Should I get tested?" are different questions.


def is_han(ch: str) -> bool:
    """Return True for CJK ideographs (including extension A and compatibility ideographs)."""
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x2FA1F
    )


def _is_strippable(ch: str) -> bool:
    # Punctuation (P*), symbols incl. emoji (S*), controls/format chars (C*) and marks (M*) that
    # are not part of a word become spaces.
    cat = unicodedata.category(ch)
    return cat[0] in "PSC" or cat in ("Zl", "Zp")


def normalize(text: str) -> str:
    """Normalise text for matching: NFKC, casefold, punctuation/emoji removed, repeats squeezed."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_T2S)
    text = "".join(" " if _is_strippable(ch) else ch for ch in text)
    # Drop combining marks left over after NFKC (e.g. emoji skin-tone variation selectors).
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn" or ch.isalnum())
    # "sooooo" -> "soo": three or more of the same non-digit letter become two; keeps "good".
    text = _REPEAT_RE.sub(r"\1\1", text)
    return _SPACE_RE.sub(" ", text).strip()


def detect_script(text: str) -> str:
    """Guess the language from the script: "zh" (Han), "en" (Latin), "ru", ... or "und"."""
    counts: dict[str, int] = {}
    for ch in text:
        if is_han(ch):
            key = "zh"
        elif not ch.isalpha():
            continue
        elif ch.isascii() or "LATIN" in unicodedata.name(ch, ""):
            key = "en"
        else:
            name = unicodedata.name(ch, "")
            if "CYRILLIC" in name:
                key = "ru"
            elif "ARABIC" in name:
                key = "ar"
            elif "HIRAGANA" in name or "KATAKANA" in name:
                key = "ja"
            elif "HANGUL" in name:
                key = "ko"
            else:
                key = "und"
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "und"
    # One Han character carries roughly a word's worth of meaning, so weigh it like ~3 letters.
    if "zh" in counts:
        counts["zh"] *= 3
    return max(counts, key=lambda k: counts[k])


_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ational", "ate"),
    ("fulness", "ful"),
    ("iveness", "ive"),
    ("ization", "ize"),
    ("ousness", "ous"),
    ("ements", ""),
    ("ations", "ate"),
    ("ation", "ate"),
    ("ement", ""),
    ("ments", ""),
    ("ities", ""),
    ("ness", ""),
    ("ment", ""),
    ("ings", ""),
    ("ies", "i"),
    ("ied", "i"),
    ("ing", ""),
    ("ity", ""),
    ("ers", ""),
    ("est", ""),
    ("ed", ""),
    ("er", ""),
    ("es", ""),
    ("s", ""),
)


@lru_cache(maxsize=65536)
def stem_en(word: str) -> str:
    """Strip common English inflectional suffixes (a deliberately small, predictable stemmer)."""
    if len(word) <= 3 or not word.isalpha():
        return _drop_e(word)
    for suffix, repl in _SUFFIXES:
        if not word.endswith(suffix):
            continue
        if suffix == "s" and word.endswith(("ss", "us", "is")):
            return word
        if suffix == "es" and not word.endswith(("ches", "shes", "sses", "xes", "zes")):
            # "uses" -> "use", "cases" -> "case": only the "s" is a suffix here.
            base = word[:-1]
        else:
            base = word[: -len(suffix)] + repl
        if len(base) < 2:
            continue
        # "stopped" -> "stop", "running" -> "run": undouble a final consonant pair.
        if (
            suffix in ("ed", "ing", "er", "est", "ers", "ings")
            and len(base) >= 3
            and base[-1] == base[-2]
            and base[-1] not in "aeiouslz"
        ):
            base = base[:-1]
        return _drop_e(base)
    return _drop_e(word)


def _drop_e(word: str) -> str:
    # Unify "delete"/"deleted"/"deleting" on "delet": drop a silent final e (not "ee"), and
    # "apply"/"applies"/"applied" on "appli": a final y after a consonant becomes i.
    if len(word) >= 3 and word.endswith("e") and word[-2] != "e":
        return word[:-1]
    if len(word) > 3 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "i"
    return word


def split_runs(text: str) -> list[tuple[bool, str]]:
    """Split normalised text into (is_han, run) pieces, keeping Han and non-Han text apart."""
    runs: list[tuple[bool, str]] = []
    buf: list[str] = []
    cur: bool | None = None
    for ch in text:
        han = is_han(ch)
        if ch == " ":
            if buf:
                runs.append((bool(cur), "".join(buf)))
                buf, cur = [], None
            continue
        if cur is not None and han != cur:
            runs.append((cur, "".join(buf)))
            buf = []
        cur = han
        buf.append(ch)
    if buf:
        runs.append((bool(cur), "".join(buf)))
    return runs


def words(text: str) -> list[str]:
    """Return the non-Han word tokens of already-normalised text (stop words kept, no stemming)."""
    out: list[str] = []
    for han, run in split_runs(text):
        if not han:
            out.extend(_WORD_RE.findall(run))
    return out


_HAN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_HAN_DIGITS.update({"六": 6, "七": 7, "八": 8, "九": 9})
_HAN_POWERS = {"十": 10, "百": 100, "千": 1000}
# Measure words after which a Chinese numeral is a quantity (两个月, 三岁, 十三价). Words that
# also mean "a bit" / "a kind of" (一点, 一种, 一片) are left out: there 一 is not a count.
_MEASURES = (
    "小时|分钟|星期|个|岁|天|日|周|月|年|次|针|价|秒|斤|克|度|号|级|期|位|名|元|块|张|辆|倍|遍|"
    "颗|粒|瓶|盒|层|户|套"
)
_HAN_NUMBER_RE = re.compile(rf"([零〇一二两三四五六七八九十百千]+)(?={_MEASURES})")
# A number and the measure word after it, if any (for comparing quantities): "3 个月" ->
# ("3", "个月"), "拨打110" -> ("110", "").
# A bound (满16周岁, 超过3天, 16岁以下, 7天内) is a range, not a value, and is skipped.
_NUMBER_UNIT_RE = re.compile(
    r"(满|超过|超出|不到|不足|低于|高于|大于|小于|少于|多于)? ?(?<![a-z\d])(?<![a-z] )(\d+) ?"
    rf"(个月|周岁|{_MEASURES})?(以下|以上|以内|之内|内|之前|之后|以前|以后|多)?"
)
_UNIT_ALIASES = {"周岁": "岁"}


def _han_number(numeral: str) -> str | None:
    """Value of a Chinese numeral ("十三" -> "13", "二〇二四" -> "2024"), None if ambiguous."""
    if not any(ch in _HAN_POWERS for ch in numeral):
        if len(numeral) == 1:
            return str(_HAN_DIGITS[numeral])
        if len(numeral) >= 3 or "零" in numeral or "〇" in numeral:
            # Read digit by digit, like a year.
            return "".join(str(_HAN_DIGITS[ch]) for ch in numeral)
        # "三四天", "一两个": an approximate range, not a number.
        return None
    total = digit = 0
    for ch in numeral:
        if ch in _HAN_POWERS:
            total += (digit or 1) * _HAN_POWERS[ch]
            digit = 0
        else:
            digit = _HAN_DIGITS[ch]
    return str(total + digit)


def han_numerals_to_digits(text: str) -> str:
    """Write Chinese numerals that count something as digits: "两个月" -> "2 个月".

    Only numerals followed by a measure word are converted, so words that merely contain a
    numeral character (一直, 一般, 统一, 十分) stay as they are. The digits are spaced off so
    they become a term of their own, like "3" in "3个月".
    """
    if not any(ch in _HAN_DIGITS or ch in _HAN_POWERS for ch in text):
        return text

    def repl(m: re.Match[str]) -> str:
        value = _han_number(m.group(1))
        return m.group(0) if value is None else f" {value} "

    return _SPACE_RE.sub(" ", _HAN_NUMBER_RE.sub(repl, text)).strip()


def number_units(text: str) -> frozenset[tuple[str, str]]:
    """Numbers in normalised text with the Han measure word after each ("" if none).

    ``"孩子 3 岁 发烧 2 天"`` -> ``{("3", "岁"), ("2", "天")}``. Digits in or after Latin
    words ("covid19", "covid 19") are not numbers here, and bounds ("16 岁以下", "满 3 个月")
    are left out: a question about a 10-year-old does not contradict one about children under
    16.
    """
    out: set[tuple[str, str]] = set()
    for m in _NUMBER_UNIT_RE.finditer(text):
        bound_before, number, unit, bound_after = m.groups()
        if bound_before or bound_after:
            continue
        unit = unit or ""
        out.add((number, _UNIT_ALIASES.get(unit, unit)))
    return frozenset(out)


def numbers_conflict(
    query: frozenset[tuple[str, str]], phrasing: frozenset[tuple[str, str]]
) -> bool:
    """True when both give a number for the same unit and none of those numbers agree."""
    if not query or not phrasing:
        return False
    for unit in {u for _, u in query}:
        q = {n for n, u in query if u == unit}
        p = {n for n, u in phrasing if u == unit}
        if p and not q & p:
            return True
    return False


def terms(text: str) -> list[str]:
    """Index terms of normalised text: English stems, Han uni- and bigrams."""
    out: list[str] = []
    for han, run in split_runs(text):
        if han:
            out.extend(run)
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            # Single letters ("what's" -> "what s") carry no meaning but get a high IDF.
            out.extend(stem_en(w) for w in _WORD_RE.findall(run) if len(w) > 1)
    return out


def content_string(text: str) -> str:
    """Text reduced to stems (Han runs kept as they are) for string similarity."""
    parts: list[str] = []
    for han, run in split_runs(text):
        if han:
            parts.append(run)
        else:
            parts.extend(stem_en(w) for w in _WORD_RE.findall(run))
    return " ".join(parts)
