"""Math answer verification: pull the final answer out of a model response, compare it with
a gold answer, and say `correct`, `incorrect` or `unverifiable`.

    check_math(response, reference, *, timeout=5.0) -> MathResult
    check_math_batch(pairs, *, workers=None, timeout=5.0) -> list[MathResult]

Both are pure functions: they never raise on untrusted input, and a check that runs over its
timeout ends as `unverifiable`. Timeouts are enforced by killing a worker process, not with
`signal.alarm`, so they work from any thread, process or Ray actor.

Comparison order (the first step that decides wins):
 1. Extraction from the response: the last complete `\\boxed{...}` / `\\fbox{...}` (nested
    braces allowed; an unbalanced one is `unverifiable`); else the text after the last
    "final answer is" / "answer:"; else the whole response when it is a bare answer (not
    prose; there is no guessing of the last number in free text). Nothing found is
    `unverifiable`.
 2. String normalization of both sides (same rules): math delimiters, `\\left`/`\\right`,
    spacing commands, `\\text{}`/`\\mbox{}`/`\\mathrm{}` (kept as words), a trailing unit
    ("5 cm", "10\\text{ km/h}^2"), degrees (`^\\circ`), currency signs, thousands separators
    (`1,000`, `1{,}000`, `1\\,000`), `\\dfrac`/`\\tfrac`, "or"/"and" between answers. Equal
    strings are `correct`.
 3. Multiple choice: a reference that is one capital letter A-J (or "(a)") matches the
    prediction's leading choice letter ("B", "(B)", "(B) 12"), case-insensitively. So a
    reference of just "E" is a choice letter, not Euler's number.
 4. Text answers: a reference made of words ("even", "no solution") matches the same words.
 5. Both sides are parsed (our own LaTeX/SymPy-syntax parser; never `eval`) into a small
    tree: numbers, symbols, + - * / ^ !, functions, relations, tuples, sets, lists,
    intervals, unions, matrices. Unparsable input is `unverifiable`.
 6. Structure, before any value: `\\pm` expands to a set of two answers; `x = v` (a lone
    variable on the left) compares as `v` when the other side is not an equation; intervals
    need equal endpoints and equal open/closed ends (`(a, b)` is an open interval when the
    other side is an interval or an inequality in one variable, which is turned into one);
    tuples, `[a, b]` and matrices are ordered (a `(..)` vs `[..]` pair of two never matches:
    it may be an interval); sets and bare lists ("1, 2") are unordered, and a set of two or more
    never equals a tuple, a `[..]` or an interval (`\\{1, 2\\}` vs `(1, 2)` is incorrect,
    either way round); one element equals a one-element container; a list of `x = ..`,
    `y = ..` is sorted by variable name before an ordered comparison.
 7. Values, cheap first: exact rational arithmetic and polynomial/rational-function
    identity in pure Python (`(r+5)^2` vs `r^2+10r+25`, `47/2` vs `23.5`), in the calling
    process. Only what that cannot settle (irrationals, functions, pi) goes to a SymPy worker
    process: structural equality, then numeric evaluation at 30 digits. Expressions with
    free symbols are compared at 6 fixed pseudo-random points (mixed signs); equal at every
    point where both are finite is `correct` (a probabilistic identity test: `sec^2 y` vs
    `tan^2 y + 1`). Equations `l = r` compare the numerators of `l - r`: equal up to a
    nonzero constant factor (rearrangement and scaling; `2x+1=0` vs `x+1=0` is not).
    Inequalities likewise with a positive factor and the same strictness.

Asymmetry: the reference is the gold answer. It is never searched for an answer (only
normalized), a reference that does not parse makes the pair `unverifiable`, a texty
reference switches to word comparison, and a choice-letter reference asks the prediction for
a letter. The prediction is extracted from free text. Containers: a set/list reference
accepts the prediction in any order (a set reference: not a tuple or `[..]`); a
tuple/`[..]` reference needs the written order (and is never matched by a set).

Percent policy: `p%` on one side only matches either `p` or `p/100` on the other
(`25%` vs `25` and `25%` vs `0.25` are both correct); `%` on both sides compares `p`s.

Tolerance: two exact rationals must be exactly equal (decimals are exact: `0.001` vs
`0.0011`, `1e-10` vs `2e-10` are incorrect). Irrational values compare with a relative
tolerance of 1e-9 at 30 significant digits (no absolute tolerance, so tiny different values
stay different). A decimal literal with at least 3 significant digits also matches a value
that is not itself a decimal literal if it is that value rounded to the literal's decimal
places (`0.333` vs `1/3`, `3.14` vs `pi`, `33.3%` vs `1/3`; not `0.33` vs `1/3`).

Other conventions: `i` and `I` are the imaginary unit, `e`/`E` is Euler's number, `log` is
natural, a number directly followed by a `\\frac` of integers is a mixed number
(`3\\frac{1}{2}` = 3.5), `^` takes the whole number after it (`2^10` = 1024), and `a^\\circ`
compares as `a` (no degree/radian conversion).

Not covered: units are stripped, not converted (`100 cm` vs `1 m` is incorrect); calculus
operators (`\\int`, `\\sum`, `\\lim`, derivatives) and set-builder notation are
unparsable; `\\cdots` sequences; equations are not solved (`x^2 = 4` vs `x = 2` is
incorrect); equivalence of inequalities is by scaling only; intervals in a union are matched
one to one, not merged; numeric identity testing can in principle call two different
functions equal when they agree at all six points (e.g. piecewise functions).

Bounds (so a check stays cheap on any input): answers over MAX_ANSWER_CHARS, nested deeper
than MAX_TREE_DEPTH, or with numbers past 10^±500000 are `unverifiable`; exponents past
10^±5000 are left to the SymPy worker, which has the timeout. `extract_answer` and the
checks accept any value (bytes as UTF-8, others by `str()`) and never raise.

Modules, bottom up (an import only points down; the submodules import each other
relatively, so a worker process can load this package by path under a private name):

    names         the names the grammar knows (functions, constants, Greek letters)
    extract       the final answer in a response
    normalize     the canonical string form of an answer
    parse         tokenizer and parser: a normalized answer into a tree of tuples
    exact         the exact engine (pure Python, in the calling process)
    sympy_engine  the SymPy engine (in worker processes only)
    compare       choice letters, text answers, structure, then values through an engine
    workers       the in-process stage, worker processes and timeouts, the cache, the API
"""

from __future__ import annotations

# The public API, plus what callers reached as attributes of the single module this package
# was: the verdicts and bounds named above, `_local_stage` (tests/test_fuzz.py) and
# `_clear_caches` (benchmarks/verify_math.py).
from .compare import CORRECT, INCORRECT, UNVERIFIABLE
from .exact import MIN_ROUNDING_DIGITS
from .extract import MAX_ANSWER_CHARS, extract_answer
from .normalize import normalize_answer
from .parse import MAX_DEPTH, MAX_TREE_DEPTH
from .sympy_engine import REL_TOL
from .workers import (STARTUP_TIMEOUT, MathResult, _clear_caches, _local_stage, check_math,
                      check_math_batch)

__all__ = ["MathResult", "check_math", "check_math_batch", "extract_answer", "normalize_answer"]
