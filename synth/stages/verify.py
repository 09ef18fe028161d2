"""Verification stages: wrap `verifiers` and add verdict columns to a batch.

Both are stages on `synth.stages.base.Stage` (a callable over a `pyarrow.Table` returning a
Table; parameters checked when the pipeline file loads).
The reference answer / tests / mode are read from a column of that name when the batch has
one, else from the row's `meta` JSON (where generation keeps the seed row's other fields, e.g.
a math problem's `answer` or a code problem's `tests`).

Columns added:
  verify_math: math_verdict (correct | incorrect | unverifiable), math_predicted, math_reason,
               math_label (what the answer was checked against: reference | majority | null)
  verify_code: code_verdict (passed | failed | error | timeout | memory | unverifiable),
               code_reason, code_program (the code that was run),
               code_tests_source (problem | response | null: whose tests were run)

Keeping only verified rows: `drop: [incorrect, unverifiable]` (math) or `drop: [failed, error,
timeout, memory, unverifiable]` (code) sets `reject_reason` to `math.<verdict>` /
`code.<verdict>` on those rows, so they go to OUT/rejects/ with their verdict columns. A row
that already has a reject reason keeps it (and is still verified, so pass@k sees every sample).

Majority vote (`verify_math`, `majority: true`): a problem without a reference answer is
judged against the answer most of its own samples give (self-consistency, Wang et al. 2022).
The samples of a prompt are the batch rows sharing `prompt_id`; the runner keeps every
generated batch in one block (see `synth.pipeline.run._generate`), so all of a prompt's samples are
in the same batch. The answers are clustered by equivalence (the same checker); the largest
cluster wins if it has at least `majority_min_votes` samples and more than
`majority_min_fraction` of the prompt's samples (samples without an answer count in the
total). Its answer then plays the reference for every sample of that prompt: `math_label` is
`majority`. No winner leaves the prompt's samples `unverifiable` ("no majority").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from synth.errors import SynthError
from synth.stages.base import ParamError, Result, Stage, check_names


MATH_VERDICTS = ("correct", "incorrect", "unverifiable")
CODE_VERDICTS = ("passed", "failed", "error", "timeout", "memory", "unverifiable")


@dataclass(frozen=True)
class VerifyMathParams:
    response_column: str = "response"
    reference_column: str = "answer"
    timeout: float = 5.0
    drop: list = field(default_factory=list)
    """Verdicts whose rows go to rejects (reason `math.<verdict>`), e.g. [incorrect, unverifiable]."""
    majority: bool = False
    """Judge problems without a reference against their samples' majority answer."""
    majority_min_votes: int = 2
    majority_min_fraction: float = 0.5
    """The winning answer needs more than this fraction of the prompt's samples."""
    group_column: str = "prompt_id"
    """Rows sharing this value are samples of one problem (for the majority vote)."""

    def check(self) -> None:
        check_names("drop", self.drop, MATH_VERDICTS, "verdict")
        _positive("timeout", self.timeout)
        if self.majority_min_votes < 1:
            raise ParamError("majority_min_votes", f"must be >= 1; got {self.majority_min_votes}")
        if not 0 <= self.majority_min_fraction < 1:
            raise ParamError("majority_min_fraction", f"must be in [0, 1); got {self.majority_min_fraction}")


@dataclass(frozen=True)
class VerifyCodeParams:
    response_column: str = "response"
    tests_column: str = "tests"
    mode_column: str = "mode"
    """Per-row mode (assert | stdio); rows without one use `mode`."""
    mode: str = "assert"
    timeout: float = 10.0
    memory_mb: int = 1024
    drop: list = field(default_factory=list)
    """Verdicts whose rows go to rejects (reason `code.<verdict>`), e.g. [failed, error]."""
    self_tests: bool = False
    """The response holds its own assert tests (template `code_solution_tests`): top-level
    asserts are taken out of the program, and run as the tests when the problem has none."""

    def check(self) -> None:
        if self.mode not in ("assert", "stdio"):
            raise ParamError("mode", f"must be assert or stdio; got {self.mode!r}")
        check_names("drop", self.drop, CODE_VERDICTS, "verdict")
        _positive("timeout", self.timeout)
        if self.memory_mb < 1:
            raise ParamError("memory_mb", f"must be >= 1; got {self.memory_mb}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ParamError(key, f"must be > 0; got {value}")


def _drop_reasons(verdicts: list[str], drop: list[str], prefix: str) -> list | None:
    """`<prefix>.<verdict>` for rows whose verdict is in `drop`; None (no `reject_reason`
    column set) when nothing is dropped."""
    if not drop:
        return None
    return [f"{prefix}.{v}" if v in drop else None for v in verdicts]


def field_values(batch, column: str) -> list:
    """`column` from the batch, or from each row's `meta` JSON; a missing field is None."""
    if column in batch.column_names:
        return batch.column(column).to_pylist()
    if "meta" in batch.column_names:
        out = []
        for m in batch.column("meta").to_pylist():
            try:
                out.append(json.loads(m).get(column) if m else None)
            except (ValueError, AttributeError):
                out.append(None)
        return out
    raise SynthError(f"no column {column!r} (and no meta column to look in); "
                     f"columns: {', '.join(batch.column_names)}")


class VerifyMath(Stage):
    name = "verify_math"
    Params = VerifyMathParams
    reasons = tuple(f"math.{v}" for v in MATH_VERDICTS)
    skip_rejected = False  # every sample is verified, so pass@k sees them all

    def __init__(self, **params):
        super().__init__(**params)
        self.drop = check_names("drop", self.params.drop, MATH_VERDICTS, "verdict")

    def compute(self, batch) -> Result:
        import pyarrow as pa

        from verifiers.math import check_math_batch

        responses = ["" if r is None else str(r) for r in field_values(batch, self.params.response_column)]
        references = [None if g is None else str(g) for g in field_values(batch, self.params.reference_column)]
        labels = ["reference" if g is not None else None for g in references]
        no_majority = set()
        if self.params.majority and any(g is None for g in references):
            groups = self._groups(batch, [i for i, g in enumerate(references) if g is None])
            for rows in groups:
                winner = majority_answer([responses[i] for i in rows], self.params.majority_min_votes,
                                         self.params.majority_min_fraction, self.params.timeout)
                for i in rows:
                    if winner is None:
                        no_majority.add(i)
                    else:
                        references[i], labels[i] = winner, "majority"
        results = check_math_batch([(r, g or "") for r, g in zip(responses, references)],
                                   timeout=self.params.timeout)
        verdicts = [res.verdict if g is not None else "unverifiable" for res, g in zip(results, references)]
        reasons = []
        for i, (res, g, lab) in enumerate(zip(results, references, labels)):
            if g is None:
                reasons.append("no majority answer among the samples" if i in no_majority
                               else f"no reference ({self.params.reference_column})")
            else:
                reasons.append(res.reason if lab == "reference" else f"vs majority answer {g}: {res.reason}")
        columns = {
            "math_verdict": (verdicts, pa.string()),
            "math_predicted": ([res.predicted for res in results], pa.string()),
            "math_reason": (reasons, pa.string()),
            "math_label": (labels, pa.string()),
        }
        return Result(columns, _drop_reasons(verdicts, self.drop, "math"))

    def _groups(self, batch, rows: list[int]) -> list[list[int]]:
        """Rows (of those given) grouped by `group_column`, each group checked to be whole."""
        col = self.params.group_column
        if col not in batch.column_names:
            raise SynthError(f"verify_math: majority needs a {col!r} column to group a problem's "
                             f"samples; columns: {', '.join(batch.column_names)}")
        keys = batch.column(col).to_pylist()
        samples = (batch.column("sample_index").to_pylist() if "sample_index" in batch.column_names
                   else None)
        groups: dict = {}
        for i in rows:
            groups.setdefault(keys[i], []).append(i)
        for key, members in groups.items():
            if samples is not None and sorted(samples[i] for i in members) != list(range(len(members))):
                raise SynthError(f"verify_math: the samples of {col} {key} are split across batches "
                                 "(sample_index is not 0..n-1); a majority vote needs them together")
        return list(groups.values())


def majority_answer(responses: list[str], min_votes: int = 2, min_fraction: float = 0.5,
                    timeout: float = 5.0) -> str | None:
    """The answer most responses give, if it wins (see the module docstring), else None.

    Answers are clustered greedily: each joins the first cluster whose first answer it
    equals under `check_math` (so `0.5`, `1/2` and `\\frac{1}{2}` are one answer)."""
    from verifiers.math import check_math, extract_answer

    answers = []
    for r in responses:
        try:
            answers.append(extract_answer(r or ""))
        except Exception:  # an unbalanced \\boxed{ has no answer
            answers.append(None)
    clusters: list[list[str]] = []
    for a in answers:
        if a is None or not a.strip():
            continue
        for c in clusters:
            if a == c[0] or check_math(f"\\boxed{{{a}}}", c[0], timeout=timeout).verdict == "correct":
                c.append(a)
                break
        else:
            clusters.append([a])
    if not clusters:
        return None
    sizes = sorted((len(c) for c in clusters), reverse=True)
    best = max(clusters, key=len)
    tie = len(sizes) > 1 and sizes[0] == sizes[1]
    if tie or len(best) < min_votes or len(best) <= min_fraction * len(responses):
        return None
    return best[0]


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*)$", re.DOTALL | re.IGNORECASE)


def extract_program(response: str) -> str | None:
    """The last fenced code block (```python ... ```), else the response if it looks like code."""
    if not response:
        return None
    blocks = _FENCE.findall(response)
    if blocks:
        return blocks[-1]
    # [^\S\n]* rather than \s*: \s would also eat newlines, quadratic on runs of blank lines
    if re.search(r"^[^\S\n]*(def |import |from |class |print\()", response, re.MULTILINE):
        return response
    return None


def split_self_tests(response: str) -> tuple[str | None, str | None]:
    """(program, tests) from a response that wrote its own asserts: the code of every fenced
    block with its top-level `assert` statements taken out as the tests. A reply cut inside
    its first block (no closing fence) keeps the longest start of that block that parses, so
    the cut statement is dropped. A block that does not parse keeps all its code, and its
    lines starting with `assert ` that parse alone become tests."""
    import ast

    if not response:
        return None, None
    blocks = _FENCE.findall(response)
    if not blocks:
        cut = _OPEN_FENCE.search(response)
        whole = _parsable_start(cut.group(1)) if cut else extract_program(response)
        blocks = [whole] if whole else []
    code, tests = [], []
    for block in blocks:
        lines = block.splitlines()
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError):
            tests += [ln for ln in lines if ln.startswith("assert ") and _parses(ln)]
            code.append("\n".join(ln for ln in lines if not ln.startswith("assert ")))
            continue
        drop = set()
        for n in tree.body:
            if isinstance(n, ast.Assert):
                tests.append("\n".join(lines[n.lineno - 1:n.end_lineno]))
                drop.update(range(n.lineno - 1, n.end_lineno))
        code.append("\n".join(ln for k, ln in enumerate(lines) if k not in drop))
    program = "\n\n".join(c.strip("\n") for c in code if c.strip())
    return (program + "\n" if program else None), ("\n".join(tests) + "\n" if tests else None)


def _parses(source: str) -> bool:
    import ast

    try:
        ast.parse(source)
        return True
    except (SyntaxError, ValueError):
        return False


def _parsable_start(block: str, max_drop: int = 20) -> str:
    """The block without its last lines, as few as make it parse (the block if none do)."""
    lines = block.rstrip("\n").splitlines()
    for k in range(min(max_drop, len(lines) - 1) + 1):
        head = "\n".join(lines[:len(lines) - k])
        if head.strip() and _parses(head):
            return head + "\n"
    return block


class VerifyCode(Stage):
    name = "verify_code"
    Params = VerifyCodeParams
    reasons = tuple(f"code.{v}" for v in CODE_VERDICTS)
    skip_rejected = False  # every sample is run, so pass@k sees them all

    def __init__(self, **params):
        super().__init__(**params)
        self.drop = check_names("drop", self.params.drop, CODE_VERDICTS, "verdict")

    def compute(self, batch) -> Result:
        import pyarrow as pa

        from verifiers.code import IsolationUnavailable, check_code_batch

        responses = field_values(batch, self.params.response_column)
        tests = field_values(batch, self.params.tests_column)
        try:
            modes = field_values(batch, self.params.mode_column)
        except SynthError:
            modes = [None] * batch.num_rows
        sources = ["problem" if t is not None else None for t in tests]
        if self.params.self_tests:
            programs = []
            for i, r in enumerate(responses):
                prog, own = split_self_tests(r or "")
                programs.append(prog)
                if tests[i] is None and own is not None:
                    tests[i], sources[i], modes[i] = own, "response", "assert"
        else:
            programs = [extract_program(r or "") for r in responses]
        items, index = [], []
        for i, (prog, t, m) in enumerate(zip(programs, tests, modes)):
            if prog is not None and t is not None:
                items.append({"program": prog, "tests": t, "mode": m or self.params.mode,
                              "timeout": self.params.timeout, "memory_mb": self.params.memory_mb})
                index.append(i)
        verdicts = ["unverifiable"] * batch.num_rows
        reasons = ["no code block in the response" if p is None else f"no tests ({self.params.tests_column})"
                   for p in programs]
        try:
            results = check_code_batch(items) if items else []
        except IsolationUnavailable as e:  # this machine, not the rows: stop with one line
            raise SynthError(str(e)) from None
        for i, res in zip(index, results):
            verdicts[i] = res.verdict
            reasons[i] = _code_reason(res)
        ran = set(index)
        sources = [s if i in ran else None for i, s in enumerate(sources)]
        columns = {
            "code_verdict": (verdicts, pa.string()),
            "code_reason": (reasons, pa.string()),
            "code_program": (programs, pa.string()),
            "code_tests_source": (sources, pa.string()),
        }
        return Result(columns, _drop_reasons(verdicts, self.drop, "code"))


def _code_reason(res) -> str:
    for attr in ("reason", "message", "stderr_tail", "stderr"):
        v = getattr(res, attr, None)
        if v:
            return str(v)[-300:]
    return res.verdict
