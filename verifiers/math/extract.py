"""Extraction: the final answer in a model response (see `verifiers.math` for the rules)."""

from __future__ import annotations

import re

from .names import _PLAIN_NAMES

MAX_ANSWER_CHARS = 2000  # longer extracted answers are unverifiable (parse cost stays bounded)

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_RE = re.compile(r"(?:final\s+answer|answer)\s*(?:is\s*:?|:|=)\s*", re.I)
_BARE_BOX_RE = re.compile(r"[^\s$]+")  # the answer of "\boxed 5"


class _Unbalanced(Exception):
    pass


def _match_brace(s: str, i: int) -> int:
    """Index of the `}` closing the `{` at s[i], or -1. Escaped braces do not count."""
    depth, j, n = 0, i, len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _last_boxed(text: str) -> str | None:
    last, pos = None, 0
    while True:
        m = _BOX_RE.search(text, pos)
        if not m:
            return last
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = _match_brace(text, j)
            if end < 0:
                raise _Unbalanced
            last, pos = text[j + 1 : end], end + 1
        else:  # "\boxed 5"
            m2 = _BARE_BOX_RE.match(text, j)  # at j, without copying text[j:] (quadratic)
            if m2:
                last, pos = m2.group(0), m2.end()
            else:
                pos = j


def _after_marker(text: str) -> str | None:
    last = None
    for m in _ANSWER_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() :].lstrip(" *_:")
    for open_, close in (("$$", r"\$\$"), ("$", r"(?<!\\)\$"), ("\\(", r"\\\)"), ("\\[", r"\\\]")):
        if rest.startswith(open_):
            end = re.compile(close).search(rest, len(open_))
            if end:
                return rest[len(open_) : end.start()]
    line = rest.split("\n", 1)[0]
    line = re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]
    return line.strip(" *_.") or None


def _is_prose(text: str) -> bool:
    t = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+", " ", text)
    words = [w for w in re.findall(r"[A-Za-z]{2,}", t) if w not in _PLAIN_NAMES]
    return len(words) > 3


def extract_answer(response: str) -> str | None:
    """The final answer in a response (see `verifiers.math`), or None (also for a
    `\\boxed{` that never closes). Never raises on a string."""
    try:
        return _extract(response)
    except _Unbalanced:
        return None


def _extract(response: str) -> str | None:
    """`extract_answer`, but raises _Unbalanced for a `\\boxed{` that never closes."""
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed
    marked = _after_marker(response)
    if marked is not None:
        return marked
    t = response.strip()
    if t and len(t) <= MAX_ANSWER_CHARS and not _is_prose(t):
        return t
    return None
