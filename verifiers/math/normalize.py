"""Normalization: the canonical string form of an answer; both sides go through it."""

from __future__ import annotations

import re

from .extract import _BOX_RE, _match_brace
from .names import _PLAIN_NAMES

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": "\\times ", "\u22c5": "\\cdot ", "\u00b7": "\\cdot ",
    "\u00f7": "\\div ", "\u221a": "\\sqrt ", "\u03c0": "\\pi ", "\u221e": "\\infty ",
    "\u2264": "\\le ", "\u2265": "\\ge ", "\u2260": "\\ne ", "\u222a": "\\cup ", "\u00b0": "^\\circ",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2248": "\\approx ", "\u00b1": "\\pm ",
}
_WRAP_CMDS = (r"text|textrm|textnormal|textbf|textit|textsf|texttt|mbox|hbox|mathrm|mathbf|"
              r"mathit|mathsf|mathtt|mathnormal|boldsymbol|bm|operatorname|emph|rm")
_WRAP_RE = re.compile(r"\\(?:%s)\s*\{([^{}]*)\}" % _WRAP_CMDS)
_TEXT_UNIT_RE = re.compile(
    r"(?s)(.*?[\w}).%|]\s*)\\(?:text|mbox|mathrm|textrm|textnormal|rm)\s*\{(\s*[A-Za-z][A-Za-z .,/\-]*)\}"
    r"(\s*\^\s*\{?\s*\d\s*\}?)?\s*")
_WORD_UNIT_RE = re.compile(r"(.*?[\d}).%])\s+([A-Za-z][A-Za-z./\- ]*?(?:\^\{?\d\}?)?)")


def _strip_delims(s: str) -> str:
    s = s.strip()
    for open_, close in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(open_) and s.endswith(close) and len(s) >= len(open_) + len(close):
            return s[len(open_) : len(s) - len(close)].strip()
    m = _BOX_RE.match(s)
    if m and s[m.end() :].lstrip().startswith("{"):
        j = s.index("{", m.end())
        if _match_brace(s, j) == len(s) - 1:
            return s[j + 1 : -1].strip()
    return s


def _strip_text_unit(s: str) -> str:
    m = _TEXT_UNIT_RE.fullmatch(s)
    if not m:
        return s
    head, unit = m.group(1).strip(), m.group(2)
    letters = re.sub(r"[^A-Za-z]", "", unit)
    if unit.strip().lower() in ("or", "and") or not head or head[-1] in "+-*/^=(,":
        return s
    if len(letters) >= 2 or unit[:1].isspace():
        return head
    return s


def _strip_word_unit(s: str) -> str:
    m = _WORD_UNIT_RE.fullmatch(s)
    if not m:
        return s
    head, unit = m.group(1), m.group(2)
    if re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", head)):
        return s  # the head has variables: "x + 5 cm" is not a number with a unit
    words = re.findall(r"[A-Za-z]+", unit)
    if len(words[0]) < 2 or any(w in _PLAIN_NAMES or w in ("or", "and") for w in words):
        return s
    return head


def normalize_answer(s: str) -> str:
    """Canonical string form of an answer (both sides go through this)."""
    s = str(s)
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    for _ in range(6):
        old = s
        s = _strip_delims(s).rstrip(".").strip()
        if s == old:
            break
    s = re.sub(r"\\(?:left|right)\s*\.", "", s)
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![A-Za-z])", r"\\binom", s)
    s = re.sub(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ |~|\\;|\\:)(?=\d{3}(?!\d))", "", s)
    s = s.replace("{,}", ",")
    s = re.sub(r"\\(?:quad|qquad|displaystyle|textstyle|limits|nolimits|hfill)(?![A-Za-z])|(?<!\\)\\[;,:!> ]|~", " ", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ(?![A-Za-z])|\\degree(?![A-Za-z])", "", s)
    s = re.sub(r"\\(?:text|mbox|textrm|mathrm)\s*\{\s*(?:or|and)\s*\}", ",", s)
    s = _strip_text_unit(s)
    for _ in range(4):
        new = _WRAP_RE.sub(lambda m: " " + m.group(1) + " ", s)
        if new == s:
            break
        s = new
    s = re.sub(r"\\\$|\$|\u20ac|\u00a3|\u00a5|\\euro(?![A-Za-z])|\\pounds(?![A-Za-z])", "", s)
    s = re.sub(r"\b(?:USD|dollars?|cents?|euros?)\b", "", s)
    s = s.replace("\\%", "%")
    s = re.sub(r"\s*\b(?:percent|per\s+cent)\b", "%", s)
    s = re.sub(r"\s+", " ", s).strip()
    if s.count("=") == 1:  # "f(x) = x^2": a function name on the left is a label
        s = re.sub(r"^[A-Za-z](?:_\{?\w+\}?)?\s*\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\)\s*=\s*", "", s)
    s = _strip_word_unit(s)
    s = re.sub(r"\b(?:degrees?)\b", "", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if re.search(r"[\d=\\]", s):
        s = re.sub(r"\s*,?\s+(?:or|and)\s+", ", ", s)
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    elif re.fullmatch(r"[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?", s):
        s = s.replace(" ", "")
    m = re.fullmatch(r"(-?)(\d+) (\d+)/(\d+)", s)
    if m:
        s = f"{m.group(1)}({m.group(2)}+{m.group(3)}/{m.group(4)})"
    return s
