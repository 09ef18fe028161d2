"""rephrase_clean: turn a rephrasing model's reply into pretraining text, or reject it.

The stage reads `response` and writes the cleaned text to `text` (the column pretraining
reads); `response` itself is left as generated, so it still matches `token_ids`. The style of
a row is its `task` (the template's name: `rephrase_wikipedia`, `rephrase_qa`,
`rephrase_distill`, `rephrase_extract`, `rephrase_list`), or the `style` parameter for every
row. Rows of any other task get the generic edits and checks only.

Edits, in order (each one applied is named in `rephrase_edits`, null when none was):
  wrapper    a reply wrapped whole in a ``` fence (```markdown, ```text, ...) or in one pair
             of double quotes is unwrapped (an unclosed fence of a cut reply too)
  preamble   leading chatter: "Sure! Here is a rewritten version of the text:",
             "Here's the passage in the style of an encyclopedia.", "Certainly!",
             "**Rewritten text:**"; also when the text follows on the same line
  closing    trailing chatter: "I hope this helps!", "Let me know if ...", "Note: ...",
             "This version keeps every fact ...", "Feel free to ..."
  markdown   bold markers (** and __) removed; headings and list markers stay
  trimmed    a reply cut at `max_tokens` (finish_reason "length") is cut back to what is
             whole: prose to its last complete sentence, a list without its cut last item,
             question-answer pairs without the cut last pair
Whitespace is tidied as well (trailing spaces, runs of blank lines): not counted as an edit.

Reject reasons (`rephrase.<reason>`), the first that applies wins:
  empty          nothing is left after the edits
  echo_prompt    the text repeats the instructions: a run of `echo_ngram` words from the
                 prompt (system and user messages, the seed text taken out) appears in it
  copy           the text is the seed copied, not rephrased: at least `max_copy_fraction`
                 of its word `copy_ngram`-grams occur in the seed text
  truncated      cut at max_tokens and nothing whole is left to keep: no complete sentence,
                 or the cut-back text would keep less than `min_keep_fraction` of the
                 characters (prose); only the cut item (list) or pair (qa) was there
  no_qa_pairs    qa style without one question followed by a non-empty answer
  no_list_items  list style without one list item (a line starting with -, *, •, + or 1. / 1))

What is covered / what is not covered:
  - Chatter is recognized by English phrasings typical of instruction-tuned models; other
    languages and unusual wordings pass through (the quality filters may still catch them).
  - A prose reply that simply stops (finish_reason "stop") is never trimmed.
  - Not checked: faithfulness to the seed (facts added or changed); use a judge model for that.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from synth.errors import SynthError
from synth.stages.base import ParamError, Result, Stage, check_names

STYLES = ("rephrase_wikipedia", "rephrase_qa", "rephrase_distill", "rephrase_extract", "rephrase_list")
REASONS = ("rephrase.empty", "rephrase.echo_prompt", "rephrase.copy", "rephrase.truncated",
           "rephrase.no_qa_pairs", "rephrase.no_list_items")


@dataclass(frozen=True)
class RephraseCleanParams:
    response_column: str = "response"
    text_column: str = "text"
    """Where the cleaned text goes."""
    style: str | None = None
    """One of the five styles for every row; default: each row's `task`."""
    min_keep_fraction: float = 0.5
    """A cut prose reply is kept, trimmed to its last sentence, only if that keeps this much."""
    echo_ngram: int = 8
    copy_ngram: int = 8
    max_copy_fraction: float = 0.9
    disable: list = field(default_factory=list)
    """Reasons not to check, e.g. [rephrase.copy]."""

    def check(self) -> None:
        if self.style is not None:
            check_names("style", self.style, STYLES, "style")
        check_names("disable", self.disable, REASONS, "reason")
        if not 0 <= self.min_keep_fraction <= 1:
            raise ParamError("min_keep_fraction", f"must be in [0, 1]; got {self.min_keep_fraction}")
        if not 0 < self.max_copy_fraction <= 1:
            raise ParamError("max_copy_fraction", f"must be in (0, 1]; got {self.max_copy_fraction}")
        for key in ("echo_ngram", "copy_ngram"):
            if getattr(self, key) < 1:
                raise ParamError(key, f"must be >= 1; got {getattr(self, key)}")


# --------------------------------------------------------------------------- patterns

_AFFIRM = r"(?:sure|certainly|of course|absolutely|okay|ok|alright|great|yes|gladly)"
_META = (r"(?:rewrit\w*|rephras\w*|revis\w*|version|summary|summari[sz]\w*|article|list|passage|"
         r"paragraph|text|question|answers?|pairs?|facts?|points?|condens\w*|concise|extract\w*|"
         r"knowledge|encyclop\w*|wikipedia|style)")
# "Sure! Here is ...", "Here's ...", "Below is ...", "The following is ..."
_LEAD_IN = re.compile(rf"^\s*(?:{_AFFIRM}\b[!,.]*\s*)?(?:here(?:'s|’s| is| are)|below (?:is|are)|"
                      r"the following (?:is|are))\b", re.I)
_AFFIRM_ONLY = re.compile(rf"^\s*(?:{_AFFIRM}\b[!.,]*\s*)?(?:{_AFFIRM}|here (?:it|they) (?:is|are))\s*[!.,:]*\s*$", re.I)
_HEADER = re.compile(rf"^\s*[#*_ ]*(?:[\w-]+\s+){{0,4}}{_META}(?:\s+[\w-]+){{0,3}}\s*[*_ ]*:\s*[*_ ]*\s*$", re.I)
_META_RE = re.compile(rf"\b{_META}\b", re.I)
_CLOSING = re.compile(
    r"^\s*[(\[*_]*\s*(?:note\s*[:*]|i hope\b|hope (?:this|that)\b|let me know\b|feel free\b|"
    r"is there anything\b|if you (?:have|need|want|would like)\b|please let me know\b|"
    r"i (?:have|'ve|’ve) (?:rewritten|rephrased|kept|removed|tried|condensed|made|listed)\b|"
    r"(?:in )?this (?:rewrite|rewritten \w+|version|revised \w+|summary|list|format|rephrasing)"
    r"(?:,| (?:keeps|maintains|preserves|captures|retains|provides|presents|highlights|covers|"
    r"removes|is|should|includes|focuses))\b)", re.I)
_FENCE_WHOLE = re.compile(r"^\s*```[\w+-]*[ \t]*\n(.*?)(?:\n```\s*)?$", re.S)
_BOLD = re.compile(r"\*\*|__")
_SENT_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s|$)")
_ENDS_SENTENCE = re.compile(r"[.!?][\"'”’)\]]*$")
_ITEM = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+\S")
_Q_LABEL = re.compile(r"^\s*(?:[-*•]\s*)?(?:\d+[.)]\s*)?(?:question|q)\s*\d*\s*[:.)]\s*(.*)$", re.I)
_A_LABEL = re.compile(r"^\s*(?:[-*•]\s*)?(?:answer|a)\s*\d*\s*[:.)]\s*(.*)$", re.I)
_INLINE_A = re.compile(r"(?<=\S)[ \t]+((?:answer|a)\s*\d*\s*:)", re.I)
_WORD = re.compile(r"\w+")


# --------------------------------------------------------------------------- edits


def _strip_preamble(text: str) -> tuple[str, bool]:
    """Remove leading chatter lines (and a lead-in before a colon on the first line)."""
    changed = False
    for _ in range(4):
        first, _, rest = text.lstrip().partition("\n")
        words = len(first.split())
        if _AFFIRM_ONLY.match(first):
            text, changed = rest, True
            continue
        if _HEADER.match(first) and words <= 8 and not (_Q_LABEL.match(first) or _A_LABEL.match(first)):
            text, changed = rest, True
            continue
        if _LEAD_IN.match(first) and words <= 40:
            head, colon, tail = first.partition(":")
            if colon and _META_RE.search(head) and len(head.split()) <= 30:
                text, changed = (tail.strip() + "\n" + rest) if tail.strip() else rest, True
                continue
            if not colon and (_META_RE.search(first) or first.rstrip().endswith(":")):
                text, changed = rest, True
                continue
        break
    return text, changed


def _strip_closing(text: str) -> tuple[str, bool]:
    """Remove trailing chatter: whole closing paragraphs, or a closing last line (never the
    whole text)."""
    changed = False
    for _ in range(4):
        body = text.rstrip()
        para, line = body.rfind("\n\n"), body.rfind("\n")
        if para >= 0 and _CLOSING.match(body[para + 2:]):
            text, changed = body[:para], True
        elif line >= 0 and _CLOSING.match(body[line + 1:]):
            text, changed = body[:line], True
        else:
            break
    return text, changed


def _unwrap(text: str) -> tuple[str, bool]:
    t = text.strip()
    m = _FENCE_WHOLE.match(t)
    if m and "```" not in m.group(1):
        return m.group(1), True
    if len(t) > 2 and t[0] == t[-1] == '"' and t.count('"') == 2:
        return t[1:-1], True
    return text, False


def _tidy(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def clean(text: str) -> tuple[str, list[str]]:
    """The generic edits (wrapper, preamble, closing, markdown). Returns (text, edits)."""
    edits: list[str] = []
    for _ in range(3):
        before = text
        for name, fn in (("preamble", _strip_preamble), ("closing", _strip_closing), ("wrapper", _unwrap)):
            text, changed = fn(text)
            if changed and name not in edits:
                edits.append(name)
        if text == before:
            break
    if _BOLD.search(text):
        text = _BOLD.sub("", text)
        edits.append("markdown")
    return _tidy(text), edits


# --------------------------------------------------------------------------- structure


def list_items(text: str) -> int:
    return sum(1 for ln in text.split("\n") if _ITEM.match(ln))


def qa_pairs(text: str) -> list[tuple[int, int]]:
    """(first line, end line) of each question followed by a non-empty answer, on the lines
    of `text` with inline "Answer:" labels moved to their own line (see `_qa_lines`)."""
    lines = _qa_lines(text)
    kinds = []
    for ln in lines:
        if _Q_LABEL.match(ln):
            kinds.append("q")
        elif _A_LABEL.match(ln):
            kinds.append("a")
        elif ln.rstrip().endswith("?"):
            kinds.append("q?")  # an unlabelled question line
        else:
            kinds.append(None)
    pairs: list[tuple[int, int]] = []
    q = None
    for i, kind in enumerate(kinds):
        if kind in ("q", "q?"):
            if kind == "q" or q is None or kinds[q] != "q":
                q = i
        elif kind == "a" and q is not None:
            end = next((j for j in range(i + 1, len(lines)) if kinds[j] in ("q", "a")), len(lines))
            question = " ".join([_label_rest(lines[q])] + lines[q + 1:i]).strip()
            answer = " ".join([_A_LABEL.match(lines[i]).group(1)] + lines[i + 1:end]).strip()
            if question and answer:
                pairs.append((q, end))
            q = None
    return pairs


def _qa_lines(text: str) -> list[str]:
    return _INLINE_A.sub(r"\n\1", text).split("\n")


def _label_rest(line: str) -> str:
    m = _Q_LABEL.match(line)
    return m.group(1) if m else line


def _ends_sentence(text: str) -> bool:
    return bool(_ENDS_SENTENCE.search(text.rstrip()))


def trim_truncated(text: str, style: str | None, min_keep: float) -> str | None:
    """What is whole in a reply cut at max_tokens, or None if nothing whole is worth keeping."""
    t = text.rstrip()
    if style == "rephrase_list":
        lines = t.split("\n")
        if not list_items(t):
            return t  # never a list: no_list_items says so
        if _ends_sentence(lines[-1]):
            return t  # the cut fell right after a whole item
        kept = "\n".join(lines[:-1]).rstrip()
        return kept if list_items(kept) else None
    if style == "rephrase_qa":
        pairs = qa_pairs(t)
        lines = _qa_lines(t)
        if not pairs:
            return t  # never a pair: no_qa_pairs says so
        if pairs and pairs[-1][1] == len(lines) and _ends_sentence(t):
            return t  # the last answer is whole
        whole = pairs[:-1] if pairs and pairs[-1][1] == len(lines) else pairs
        if not whole:
            return None
        return "\n".join(lines[:whole[-1][1]]).rstrip()
    if _ends_sentence(t):
        return t
    ends = list(_SENT_END.finditer(t))
    if not ends:
        return None
    kept = t[:ends[-1].end()]
    return kept if len(kept) >= min_keep * len(t) else None


# --------------------------------------------------------------------------- checks


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def _ngrams(words: list[str], n: int) -> set[tuple]:
    return set(zip(*(words[i:] for i in range(n))))


def instructions(messages_json: str | None, seed_text: str | None) -> str:
    """The prompt's own words: system and user messages with the seed text taken out."""
    try:
        msgs = json.loads(messages_json) if messages_json else []
    except ValueError:
        return ""
    out = []
    for m in msgs if isinstance(msgs, list) else []:
        content = str(m.get("content", "")) if isinstance(m, dict) else ""
        if seed_text:
            content = content.replace(seed_text, "\n")
        out.append(content)
    return "\n".join(out)


def echoes(text: str, prompt_words: str, n: int) -> bool:
    grams = _ngrams(_words(prompt_words), n)
    return bool(grams) and not grams.isdisjoint(_ngrams(_words(text), n))


def copy_fraction(text: str, seed: str, n: int) -> float:
    mine = list(zip(*(w[i:] for i in range(n)))) if (w := _words(text)) else []
    if not mine:
        return 0.0
    theirs = _ngrams(_words(seed or ""), n)
    return sum(g in theirs for g in mine) / len(mine)


# --------------------------------------------------------------------------- the stage


class RephraseClean(Stage):
    """`RephraseClean(**params)(table) -> table` with `text`, `rephrase_edits` and
    `reject_reason` (null = kept). Rows already rejected keep their reason (and are still
    cleaned: every row gets its `text`)."""

    name = "rephrase_clean"
    Params = RephraseCleanParams
    reasons = REASONS
    skip_rejected = False

    def __init__(self, **params):
        super().__init__(**params)
        disable = self.params.disable
        self.disabled = set([disable] if isinstance(disable, str) else disable)

    def check(self, response: str | None, row: dict) -> tuple[str, list[str], str | None]:
        """(text, edits, reject reason or None) for one reply; `row` has task, finish_reason,
        seed_text and messages when the table does."""
        style = self.params.style or row.get("task")
        style = style if style in STYLES else None
        text, edits = clean(response or "")
        on = lambda r: r not in self.disabled  # noqa: E731
        if not text.strip():
            return text, edits, "rephrase.empty" if on("rephrase.empty") else None
        if on("rephrase.echo_prompt") and echoes(
                text, instructions(row.get("messages"), row.get("seed_text")), self.params.echo_ngram):
            return text, edits, "rephrase.echo_prompt"
        if on("rephrase.copy") and copy_fraction(text, row.get("seed_text") or "",
                                                 self.params.copy_ngram) >= self.params.max_copy_fraction:
            return text, edits, "rephrase.copy"
        if row.get("finish_reason") == "length":
            trimmed = trim_truncated(text, style, self.params.min_keep_fraction)
            if trimmed is None:
                if on("rephrase.truncated"):
                    return text, edits, "rephrase.truncated"
            elif trimmed != text:
                text = _tidy(trimmed)
                edits.append("trimmed")
        if style == "rephrase_qa" and on("rephrase.no_qa_pairs") and not qa_pairs(text):
            return text, edits, "rephrase.no_qa_pairs"
        if style == "rephrase_list" and on("rephrase.no_list_items") and not list_items(text):
            return text, edits, "rephrase.no_list_items"
        return text, edits, None

    def compute(self, table) -> Result:
        import pyarrow as pa

        col = self.params.response_column
        if col not in table.column_names:
            raise SynthError(f"rephrase_clean: no column {col!r}; columns: {', '.join(table.column_names)}")
        n = table.num_rows
        get = lambda c: table.column(c).to_pylist() if c in table.column_names else [None] * n  # noqa: E731
        responses = get(col)
        info = {c: get(c) for c in ("task", "finish_reason", "seed_text", "messages")}
        texts, edits, reasons = [], [], []
        for i in range(n):
            text, ed, why = self.check(responses[i], {c: v[i] for c, v in info.items()})
            texts.append(text)
            edits.append(",".join(ed) or None)
            reasons.append(why)
        return Result(columns={self.params.text_column: (texts, pa.string()),
                               "rephrase_edits": (edits, pa.string())},
                      reasons=reasons)
