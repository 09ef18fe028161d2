"""Quality filters: heuristic drop rules over generated text, as a stage adding `reject_reason`.

A rule is a plain function `rule(text, row, cfg) -> str | None`: the drop reason, or None to
keep. Reasons are `<group>.<rule>` and every one the module can emit is in `REASONS`. The
stage runs the rules of the enabled groups in the fixed order of the `RULES` table below and
the first failing rule names the reason:

  gen         empty, truncated, refusal, repetition_loop, too_short, missing_final_answer
  gopher      word_count, mean_word_length, symbol_word_ratio, bullet_lines, ellipsis_lines,
              alpha_words, stop_words
  gopher_rep  dup_line_frac, dup_para_frac, dup_line_char_frac, dup_para_char_frac,
              top_2gram..top_4gram, dup_5gram..dup_10gram
  c4          lorem_ipsum, curly_bracket, javascript, policy, terminal_punct, words_per_line,
              too_few_sentences
  fineweb     line_punct_ratio, short_line_ratio, dup_line_char_ratio, list_ratio

Groups are opt-in (`groups`, default only "gen"): the web-text filters were tuned on web pages
and would drop most short synthetic answers (Gopher wants 50 words, C4 five sentences).

Thresholds are fields of frozen dataclasses whose defaults are the published values; a
pipeline overrides them as `thresholds: {"gopher.min_words": 20}`.

Rows with `reject_reason` already set keep it and are not checked again (the first reason
wins). A null text is always `gen.empty`, whatever the groups: no rule can judge it.

What is covered / what is not covered:
  - Words are whitespace tokens (Gopher and FineWeb used a word tokenizer; the counts differ
    a little on punctuation). Sentences are counted with a regex, not a trained splitter.
  - C4 deletes the offending *lines* (no terminal punctuation, < 3 words, "javascript", policy
    notices) and keeps the rest of the page. This stage never edits text, so a row holding any
    line C4 would delete is rejected under that line's reason. This is strict on markdown
    (headings and list items fail `c4.terminal_punct`): `disable` the reasons you do not want.
  - Not covered: C4's bad-words list (not shipped here), its citation-marker removal (a text
    edit) and its cross-document 3-sentence dedup (see a dedup stage); FineWeb's language ID.
  - Lines, paragraphs and n-grams are compared exactly, after stripping surrounding spaces;
    blank lines are not counted as lines.
  - The `row` a rule sees holds the table's flat columns (finish_reason, completion_tokens,
    meta, ...); list columns (token ids, logprobs) are left out, as converting them to Python
    would cost more than all the rules.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from synth.errors import SynthError
from synth.stages.base import ParamError, Result, Stage, check_names, suggest

__all__ = [
    "C4Thresholds", "FilterConfig", "FineWebThresholds", "GenThresholds", "GopherRepThresholds",
    "GopherThresholds", "GROUPS", "QualityFilter", "QualityFilterParams", "REASONS", "RULES",
    "build_config", "reason_counts",
]

# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class GopherThresholds:
    """Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
    Gopher", Appendix A (MassiveText quality filters)."""

    min_words: int = 50  # "between 50 and 100,000 words"
    max_words: int = 100_000
    min_mean_word_length: float = 3.0  # "mean word length ... 3 to 10 characters"
    max_mean_word_length: float = 10.0
    # "a symbol-to-word ratio greater than 0.1 for either the hash symbol or the ellipsis"
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines: float = 0.9  # "more than 90% of lines starting with a bullet point"
    max_ellipsis_lines: float = 0.3  # "more than 30% ending with an ellipsis"
    min_alpha_words: float = 0.8  # "80% of words ... contain at least one alphabetic character"
    min_stop_words: int = 2  # "at least two of the following English words"
    stop_words: tuple = ("the", "be", "to", "of", "and", "that", "have", "with")
    bullets: tuple = ("-", "*", "•", "●", "○", "◦", "▪", "‣", "·")  # the paper does not list them


@dataclass(frozen=True)
class GopherRepThresholds:
    """Rae et al. 2021 (Gopher), Appendix A, Table A1: a document is removed when a fraction is
    above its threshold. Char fractions of n-grams count each character once."""

    dup_line_frac: float = 0.30  # duplicate line fraction
    dup_para_frac: float = 0.30  # duplicate paragraph fraction
    dup_line_char_frac: float = 0.20  # duplicate line character fraction
    dup_para_char_frac: float = 0.20  # duplicate paragraph character fraction
    top_2gram: float = 0.20  # top 2-gram character fraction
    top_3gram: float = 0.18
    top_4gram: float = 0.16
    dup_5gram: float = 0.15  # duplicate 5-gram character fraction
    dup_6gram: float = 0.14
    dup_7gram: float = 0.13
    dup_8gram: float = 0.12
    dup_9gram: float = 0.11
    dup_10gram: float = 0.10


@dataclass(frozen=True)
class C4Thresholds:
    """Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
    Text-to-Text Transformer" (T5), section 2.2 (C4 heuristics)."""

    # "lines that ended in a terminal punctuation mark (i.e. a period, exclamation mark,
    # question mark, or end quotation mark)"; the released C4 code (tensorflow_datasets
    # c4_utils) also treats a line ending in "..." as unterminated.
    terminal_punct: tuple = (".", "!", "?", '"')
    # "We discarded any page with fewer than 5 sentences and only retained lines that contained
    # at least 3 words." (The released c4_utils code uses the swapped values: 3 sentences,
    # 5 words per line.)
    min_words_per_line: int = 3
    min_sentences: int = 5
    # Lines with boilerplate policy notices: not in the paper's list, from the released
    # c4_utils code (_POLICY_SUBSTRINGS).
    policy_phrases: tuple = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                             "use of cookies", "use cookies")


@dataclass(frozen=True)
class FineWebThresholds:
    """Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the Finest Text Data at
    Scale": the custom heuristic filters added after the C4 ones."""

    line_punct_ratio: float = 0.12  # remove if fraction of lines ending with punctuation <= 0.12
    line_punct_exclude_zero: bool = False  # keep texts with no punctuated line at all (off in FineWeb)
    terminal_punct: tuple = (".", "!", "?", '"', "'")
    short_line_length: int = 30  # lines "shorter than 30 characters"
    short_line_ratio: float = 0.67  # remove if fraction of short lines >= 0.67
    # remove if fraction of characters in duplicated lines >= 0.1 (the paper's value; the
    # released datatrove FineWebQualityFilter defaults to 0.01)
    dup_line_char_ratio: float = 0.1
    # newlines per word > 0.3: list-like text; not in the paper, from the released FineWeb
    # pipeline (datatrove FineWebQualityFilter, new_line_ratio=0.3)
    list_ratio: float = 0.3


_A = "(?:'|’)"  # straight or curly apostrophe
_I_CANT = rf"\bi(?: can{_A}?t| cannot| won{_A}t|(?: am|{_A}m) (?:unable|not able))"


@dataclass(frozen=True)
class GenThresholds:
    """Rules for generated text. These are this project's heuristics, not published values."""

    min_words: int = 1  # set through QualityFilterParams.min_words
    require_final_answer: bool = False  # set through QualityFilterParams.require_final_answer
    final_answer_pattern: str = r"\\boxed\s*\{|\bfinal answer\b"  # case-insensitive
    # Apologetic refusals, searched only at the start of the text (a refusal opens the answer;
    # later, "I can't" is often part of a real answer).
    refusal_pattern: str = "|".join((
        rf"\b(?:i{_A}m|i am) sorry,? but (?:as an ai\b|{_I_CANT})",
        rf"\bi apologi[sz]e,? but {_I_CANT}",
        rf"{_I_CANT}(?: to)? (?:help|assist)(?: you)? with (?:that|this|your)",
        rf"{_I_CANT}(?: to)? (?:fulfill|comply with|provide) (?:that|this|your|such)",
        r"\bi must (?:respectfully )?decline\b",
    ))
    refusal_window: int = 300  # characters at the start searched with refusal_pattern
    # Model self-references, searched anywhere.
    disclaimer_pattern: str = r"\bas an ai(?: language)? model\b|\bas a large language model\b"
    # A unit of 1..loop_max_period characters repeated at the very end, in at least
    # loop_min_repeats whole copies covering at least loop_min_chars characters.
    loop_max_period: int = 500
    loop_min_repeats: int = 4
    loop_min_chars: int = 200


GROUPS = ("gen", "gopher", "gopher_rep", "c4", "fineweb")

_THRESHOLD_CLASSES = {
    "gen": GenThresholds,
    "gopher": GopherThresholds,
    "gopher_rep": GopherRepThresholds,
    "c4": C4Thresholds,
    "fineweb": FineWebThresholds,
}
# gen fields with a parameter of their own
_PARAM_FIELDS = {"gen.min_words": "min_words", "gen.require_final_answer": "require_final_answer"}


@dataclass(frozen=True)
class FilterConfig:
    """All thresholds, one dataclass per group: the `cfg` every rule receives."""

    gen: GenThresholds = GenThresholds()
    gopher: GopherThresholds = GopherThresholds()
    gopher_rep: GopherRepThresholds = GopherRepThresholds()
    c4: C4Thresholds = C4Thresholds()
    fineweb: FineWebThresholds = FineWebThresholds()


@dataclass(frozen=True)
class QualityFilterParams:
    text_column: str = "response"
    groups: list = field(default_factory=lambda: ["gen"])
    """Which groups run: any of gen, gopher, gopher_rep, c4, fineweb."""
    require_final_answer: bool = False
    """Reject texts without a final answer (gen.final_answer_pattern), e.g. for math."""
    min_words: int = 1
    disable: list = field(default_factory=list)
    """Reasons to skip, e.g. ["c4.terminal_punct"]."""
    thresholds: dict = field(default_factory=dict)
    """Overrides, "group.field" -> value, e.g. {"gopher.min_words": 20}."""

    def check(self) -> None:
        check_names("groups", self.groups, GROUPS, "group")
        check_names("disable", self.disable, REASONS, "reason")
        build_config(self)  # the threshold overrides: known keys, right types


# --------------------------------------------------------------------------- text helpers
# Small caches: consecutive rules look at the same text, so each split is done once per row.

_PUNCT = string.punctuation + "“”‘’«»…–—•·"
_HAS_ALPHA = re.compile(r"[^\W\d_]")
_PARA_SPLIT = re.compile(r"\n[ \t\r\f\v]*\n")
# a sentence ends at . ! ? (possibly repeated, possibly followed by closing quotes/brackets)
# before whitespace or the end of the text
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


@lru_cache(maxsize=8)
def _tokens(text: str) -> list[str]:
    """Whitespace-separated tokens."""
    return text.split()


@lru_cache(maxsize=8)
def _words(text: str) -> list[str]:
    """Tokens without surrounding punctuation; punctuation-only tokens dropped."""
    return [w for w in (t.strip(_PUNCT) for t in _tokens(text)) if w]


@lru_cache(maxsize=8)
def _word_chars(text: str) -> int:
    return sum(map(len, _words(text)))


@lru_cache(maxsize=8)
def _lines(text: str) -> list[str]:
    """Non-blank lines, stripped."""
    return [s for s in (line.strip() for line in text.split("\n")) if s]


@lru_cache(maxsize=8)
def _paragraphs(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _PARA_SPLIT.split(text)) if s]


@lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _frac(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(count, chars) of items equal to an earlier item."""
    seen: set[str] = set()
    count = chars = 0
    for it in items:
        if it in seen:
            count += 1
            chars += len(it)
        else:
            seen.add(it)
    return count, chars


def _ngrams(words: list[str], n: int):
    return zip(*(words[i:] for i in range(n)))


@lru_cache(maxsize=32)
def _top_ngram_chars(text: str, n: int) -> int:
    """Characters in all occurrences of the most frequent n-gram (0 if none repeats)."""
    if n > 2 and _top_ngram_chars(text, n - 1) == 0:
        return 0  # no repeated (n-1)-gram, so no repeated n-gram
    counts = Counter(_ngrams(_words(text), n))
    top = max(counts.values(), default=0)
    if top < 2:
        return 0
    return top * max(sum(map(len, g)) for g, c in counts.items() if c == top)


@lru_cache(maxsize=32)
def _dup_ngram_chars(text: str, n: int) -> int:
    """Characters of words inside an n-gram that occurred earlier (each word counted once)."""
    if n > 5 and _dup_ngram_chars(text, n - 1) == 0:
        return 0  # a duplicated n-gram contains a duplicated (n-1)-gram
    words = _words(text)
    seen: set[tuple] = set()
    dup = bytearray(len(words))
    for i, g in enumerate(_ngrams(words, n)):
        if g in seen:
            dup[i:i + n] = b"\x01" * n
        else:
            seen.add(g)
    return sum(len(w) for w, d in zip(words, dup) if d)


def _tail_loop(text: str, max_period: int, min_repeats: int, min_chars: int) -> bool:
    """Does the text end in >= min_repeats whole copies of one unit (<= max_period chars),
    covering >= min_chars? Candidate periods are the distances back to earlier occurrences of
    the last few characters, so non-repetitive text costs one `rfind` over a short window."""
    t = text.rstrip()
    n = len(t)
    if n < max(min_chars, 2):
        return False
    k = min(8, n // 2)
    key = t[n - k:]
    lo = max(0, n - k - max_period)
    pos = t.rfind(key, lo, n - 1)
    while pos != -1:
        p = n - k - pos
        unit = t[n - p:]
        start = n - p
        while start >= p and t[start - p:start] == unit:
            start -= p
        covered = n - start
        if covered >= min_chars and covered >= min_repeats * p:
            return True
        pos = t.rfind(key, lo, pos + k - 1)
    return False


# --------------------------------------------------------------------------- gen rules


def gen_empty(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "gen.empty" if not text.strip() else None


def gen_truncated(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "gen.truncated" if row.get("finish_reason") == "length" else None


def gen_refusal(text: str, row: dict, cfg: FilterConfig) -> str | None:
    g = cfg.gen
    head = text[: g.refusal_window]
    if _regex(g.refusal_pattern).search(head) or _regex(g.disclaimer_pattern).search(text):
        return "gen.refusal"
    return None


def gen_repetition_loop(text: str, row: dict, cfg: FilterConfig) -> str | None:
    g = cfg.gen
    if _tail_loop(text, g.loop_max_period, g.loop_min_repeats, g.loop_min_chars):
        return "gen.repetition_loop"
    return None


def gen_too_short(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "gen.too_short" if len(_tokens(text)) < cfg.gen.min_words else None


def gen_missing_final_answer(text: str, row: dict, cfg: FilterConfig) -> str | None:
    g = cfg.gen
    if g.require_final_answer and not _regex(g.final_answer_pattern).search(text):
        return "gen.missing_final_answer"
    return None


# --------------------------------------------------------------------------- gopher quality


def gopher_word_count(text: str, row: dict, cfg: FilterConfig) -> str | None:
    n = len(_words(text))
    return "gopher.word_count" if not cfg.gopher.min_words <= n <= cfg.gopher.max_words else None


def gopher_mean_word_length(text: str, row: dict, cfg: FilterConfig) -> str | None:
    words = _words(text)
    mean = _frac(sum(map(len, words)), len(words))
    g = cfg.gopher
    return "gopher.mean_word_length" if not g.min_mean_word_length <= mean <= g.max_mean_word_length else None


def gopher_symbol_word_ratio(text: str, row: dict, cfg: FilterConfig) -> str | None:
    n = len(_tokens(text))
    hashes = text.count("#")
    ellipses = text.count("...") + text.count("…")
    limit = cfg.gopher.max_symbol_word_ratio
    if _frac(hashes, n) > limit or _frac(ellipses, n) > limit:
        return "gopher.symbol_word_ratio"
    return None


def gopher_bullet_lines(text: str, row: dict, cfg: FilterConfig) -> str | None:
    lines = _lines(text)
    bullets = tuple(cfg.gopher.bullets)
    if _frac(sum(1 for s in lines if s.startswith(bullets)), len(lines)) > cfg.gopher.max_bullet_lines:
        return "gopher.bullet_lines"
    return None


def gopher_ellipsis_lines(text: str, row: dict, cfg: FilterConfig) -> str | None:
    lines = _lines(text)
    if _frac(sum(1 for s in lines if s.endswith(("...", "…"))), len(lines)) > cfg.gopher.max_ellipsis_lines:
        return "gopher.ellipsis_lines"
    return None


def gopher_alpha_words(text: str, row: dict, cfg: FilterConfig) -> str | None:
    tokens = _tokens(text)
    alpha = sum(1 for t in tokens if _HAS_ALPHA.search(t))
    return "gopher.alpha_words" if tokens and alpha / len(tokens) < cfg.gopher.min_alpha_words else None


def gopher_stop_words(text: str, row: dict, cfg: FilterConfig) -> str | None:
    stop = set(cfg.gopher.stop_words)
    # occurrences, not distinct words: "the ... the" counts twice
    found = sum(1 for w in _words(text) if w.lower() in stop)
    return "gopher.stop_words" if found < cfg.gopher.min_stop_words else None


# --------------------------------------------------------------------------- gopher repetition


def gopher_rep_dup_line_frac(text: str, row: dict, cfg: FilterConfig) -> str | None:
    lines = _lines(text)
    if _frac(_duplicates(lines)[0], len(lines)) > cfg.gopher_rep.dup_line_frac:
        return "gopher_rep.dup_line_frac"
    return None


def gopher_rep_dup_para_frac(text: str, row: dict, cfg: FilterConfig) -> str | None:
    paras = _paragraphs(text)
    if _frac(_duplicates(paras)[0], len(paras)) > cfg.gopher_rep.dup_para_frac:
        return "gopher_rep.dup_para_frac"
    return None


def gopher_rep_dup_line_char_frac(text: str, row: dict, cfg: FilterConfig) -> str | None:
    lines = _lines(text)
    if _frac(_duplicates(lines)[1], sum(map(len, lines))) > cfg.gopher_rep.dup_line_char_frac:
        return "gopher_rep.dup_line_char_frac"
    return None


def gopher_rep_dup_para_char_frac(text: str, row: dict, cfg: FilterConfig) -> str | None:
    paras = _paragraphs(text)
    if _frac(_duplicates(paras)[1], sum(map(len, paras))) > cfg.gopher_rep.dup_para_char_frac:
        return "gopher_rep.dup_para_char_frac"
    return None


def _top_ngram_rule(n: int) -> Callable:
    attr = f"top_{n}gram"
    reason = "gopher_rep." + attr

    def rule(text: str, row: dict, cfg: FilterConfig) -> str | None:
        frac = _frac(_top_ngram_chars(text, n), _word_chars(text))
        return reason if frac > getattr(cfg.gopher_rep, attr) else None

    rule.__name__ = f"gopher_rep_top_{n}gram"
    return rule


def _dup_ngram_rule(n: int) -> Callable:
    attr = f"dup_{n}gram"
    reason = "gopher_rep." + attr

    def rule(text: str, row: dict, cfg: FilterConfig) -> str | None:
        frac = _frac(_dup_ngram_chars(text, n), _word_chars(text))
        return reason if frac > getattr(cfg.gopher_rep, attr) else None

    rule.__name__ = f"gopher_rep_dup_{n}gram"
    return rule


# --------------------------------------------------------------------------- C4


def c4_lorem_ipsum(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "c4.lorem_ipsum" if "lorem ipsum" in text.lower() else None


def c4_curly_bracket(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "c4.curly_bracket" if "{" in text else None


def c4_javascript(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "c4.javascript" if "javascript" in text.lower() else None


def c4_policy(text: str, row: dict, cfg: FilterConfig) -> str | None:
    low = text.lower()
    return "c4.policy" if any(p in low for p in cfg.c4.policy_phrases) else None


def c4_terminal_punct(text: str, row: dict, cfg: FilterConfig) -> str | None:
    ends = tuple(cfg.c4.terminal_punct)
    for s in _lines(text):
        if not s.endswith(ends) or s.endswith("..."):
            return "c4.terminal_punct"
    return None


def c4_words_per_line(text: str, row: dict, cfg: FilterConfig) -> str | None:
    m = cfg.c4.min_words_per_line
    return "c4.words_per_line" if any(len(s.split()) < m for s in _lines(text)) else None


def c4_too_few_sentences(text: str, row: dict, cfg: FilterConfig) -> str | None:
    return "c4.too_few_sentences" if len(_SENTENCE_END.findall(text)) < cfg.c4.min_sentences else None


# --------------------------------------------------------------------------- FineWeb


def fineweb_line_punct_ratio(text: str, row: dict, cfg: FilterConfig) -> str | None:
    f = cfg.fineweb
    lines = _lines(text)
    ratio = _frac(sum(1 for s in lines if s.endswith(tuple(f.terminal_punct))), len(lines))
    if ratio <= f.line_punct_ratio and not (ratio == 0 and f.line_punct_exclude_zero):
        return "fineweb.line_punct_ratio"
    return None


def fineweb_short_line_ratio(text: str, row: dict, cfg: FilterConfig) -> str | None:
    f = cfg.fineweb
    lines = _lines(text)
    if lines and sum(1 for s in lines if len(s) < f.short_line_length) / len(lines) >= f.short_line_ratio:
        return "fineweb.short_line_ratio"
    return None


def fineweb_dup_line_char_ratio(text: str, row: dict, cfg: FilterConfig) -> str | None:
    lines = _lines(text)
    chars = sum(map(len, lines))
    if chars and _duplicates(lines)[1] / chars >= cfg.fineweb.dup_line_char_ratio:
        return "fineweb.dup_line_char_ratio"
    return None


def fineweb_list_ratio(text: str, row: dict, cfg: FilterConfig) -> str | None:
    n = len(_tokens(text))
    return "fineweb.list_ratio" if n and text.count("\n") / n > cfg.fineweb.list_ratio else None


# --------------------------------------------------------------------------- the rule table
# The order here is the order rules run in; the first failing rule gives the reason.

RULES: tuple[tuple[str, Callable], ...] = (
    ("gen.empty", gen_empty),
    ("gen.truncated", gen_truncated),
    ("gen.refusal", gen_refusal),
    ("gen.repetition_loop", gen_repetition_loop),
    ("gen.too_short", gen_too_short),
    ("gen.missing_final_answer", gen_missing_final_answer),
    ("gopher.word_count", gopher_word_count),
    ("gopher.mean_word_length", gopher_mean_word_length),
    ("gopher.symbol_word_ratio", gopher_symbol_word_ratio),
    ("gopher.bullet_lines", gopher_bullet_lines),
    ("gopher.ellipsis_lines", gopher_ellipsis_lines),
    ("gopher.alpha_words", gopher_alpha_words),
    ("gopher.stop_words", gopher_stop_words),
    ("gopher_rep.dup_line_frac", gopher_rep_dup_line_frac),
    ("gopher_rep.dup_para_frac", gopher_rep_dup_para_frac),
    ("gopher_rep.dup_line_char_frac", gopher_rep_dup_line_char_frac),
    ("gopher_rep.dup_para_char_frac", gopher_rep_dup_para_char_frac),
    *((f"gopher_rep.top_{n}gram", _top_ngram_rule(n)) for n in (2, 3, 4)),
    *((f"gopher_rep.dup_{n}gram", _dup_ngram_rule(n)) for n in range(5, 11)),
    ("c4.lorem_ipsum", c4_lorem_ipsum),
    ("c4.curly_bracket", c4_curly_bracket),
    ("c4.javascript", c4_javascript),
    ("c4.policy", c4_policy),
    ("c4.terminal_punct", c4_terminal_punct),
    ("c4.words_per_line", c4_words_per_line),
    ("c4.too_few_sentences", c4_too_few_sentences),
    ("fineweb.line_punct_ratio", fineweb_line_punct_ratio),
    ("fineweb.short_line_ratio", fineweb_short_line_ratio),
    ("fineweb.dup_line_char_ratio", fineweb_dup_line_char_ratio),
    ("fineweb.list_ratio", fineweb_list_ratio),
)

REASONS: list[str] = [reason for reason, _ in RULES]


# --------------------------------------------------------------------------- config


def _known_keys() -> list[str]:
    return [f"{g}.{f.name}" for g, cls in _THRESHOLD_CLASSES.items() for f in dataclasses.fields(cls)
            if f"{g}.{f.name}" not in _PARAM_FIELDS]


def _coerce(key: str, default, value):
    """An override value of the default's type (int -> float and list -> tuple allowed)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:  # tuple of strings
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        want = "a list of strings" if isinstance(default, tuple) else type(default).__name__
        raise ParamError("thresholds", f"{key!r} must be {want}; got {value!r}")
    return value


def build_config(params: QualityFilterParams) -> FilterConfig:
    """Thresholds with the overrides applied. Unknown keys and wrong types are a ParamError
    (a SynthError) on `thresholds`."""
    overrides: dict[str, dict] = {g: {} for g in _THRESHOLD_CLASSES}
    for key, value in (params.thresholds or {}).items():
        key = str(key)
        if key in _PARAM_FIELDS:
            raise ParamError("thresholds", f"set {_PARAM_FIELDS[key]!r} as a parameter, "
                             f"not as thresholds[{key!r}]")
        group, _, name = key.partition(".")
        cls = _THRESHOLD_CLASSES.get(group)
        names = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
        if name not in names:
            hint = suggest(key, _known_keys())
            if not hint.startswith("did you mean"):
                hint = "keys are 'group.field', e.g. 'gopher.min_words'"
            raise ParamError("thresholds", f"unknown threshold {key!r}; {hint}")
        overrides[group][name] = _coerce(key, names[name].default, value)
    overrides["gen"].update(min_words=params.min_words, require_final_answer=params.require_final_answer)
    return FilterConfig(**{g: cls(**overrides[g]) for g, cls in _THRESHOLD_CLASSES.items()})


# --------------------------------------------------------------------------- the stage


class QualityFilter(Stage):
    """`QualityFilter(**params)(table) -> table` with a `reject_reason` column (null = kept)."""

    name = "quality_filter"
    Params = QualityFilterParams
    reasons = tuple(REASONS)
    skip_rejected = True

    def __init__(self, **params):
        super().__init__(**params)
        self.cfg = build_config(self.params)
        groups, disable = self.params.groups, self.params.disable
        self.rules = [fn for reason, fn in RULES
                      if reason.split(".")[0] in groups and reason not in disable]

    def check(self, text: str | None, row: dict | None = None) -> str | None:
        """The first failing rule's reason for one text, or None to keep it."""
        if text is None:
            return "gen.empty"
        row = row or {}
        for rule in self.rules:
            reason = rule(text, row, self.cfg)
            if reason is not None:
                return reason
        return None

    def compute(self, batch) -> Result:
        import pyarrow as pa

        col = self.params.text_column
        if col not in batch.column_names:
            raise SynthError(f"quality_filter: no column {col!r}; columns: {', '.join(batch.column_names)}")
        typ = batch.schema.field(col).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise SynthError(f"quality_filter: column {col!r} must hold text; it is {typ}")
        # The row passed to rules: the flat columns (see the module docstring).
        flat = [f.name for f in batch.schema if not pa.types.is_nested(f.type)]
        values = [batch.column(c).to_pylist() for c in flat]
        texts = batch.column(col).to_pylist()
        reasons = [self.check(texts[i], {c: v[i] for c, v in zip(flat, values)})
                   for i in range(batch.num_rows)]
        return Result(reasons=reasons)


def reason_counts(table) -> dict[str, int]:
    """{reason: rows} over a filtered table, "kept" for rows without a reason."""
    counts = Counter(r or "kept" for r in table.column("reject_reason").to_pylist())
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
