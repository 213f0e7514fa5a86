"""FAQ knowledge: loader and validation, lexical index, matcher, small talk and CLI."""

from bot.faq.loader import load_knowledge
from bot.faq.matcher import Matcher, MatchResult, Scored
from bot.faq.models import FaqEntry, KnowledgeBase, LocalizedText, Problem
from bot.faq.normalize import detect_script, normalize
from bot.faq.service import FaqService
from bot.faq.smalltalk import detect_small_talk

__all__ = [
    "FaqEntry",
    "FaqService",
    "KnowledgeBase",
    "LocalizedText",
    "MatchResult",
    "Matcher",
    "Problem",
    "Scored",
    "detect_script",
    "detect_small_talk",
    "load_knowledge",
    "normalize",
]
