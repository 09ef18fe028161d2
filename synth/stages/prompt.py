"""Prompt templates per task: a system and a user message with `{field}` slots.

The slots are filled from the seed row (`text`, and for jsonl/parquet seeds any other column,
e.g. `problem`). The model's own chat template is applied by the backend: vLLM applies the
tokenizer's template in the engine actor; an OpenAI-compatible server applies its own.

The five rephrasing styles follow Nemotron-CC (Su et al., 2024, "Nemotron-CC: Transforming
Common Crawl into a Refined Long-Horizon Pretraining Dataset", section 3.2): Wikipedia-style
rewrite, diverse question-answer pairs, distillation, knowledge extraction, knowledge list.
The wording below is ours.

A row's `task` is the name of the template that made its prompt (`custom` for a prompt given
as `user:`), so rows of a pipeline with several templates (`prompt.templates`) can be told
apart, and per-style stages (`rephrase_clean`) know which style they are looking at.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from synth.errors import SynthError


@dataclass(frozen=True)
class Template:
    task: str
    user: str
    system: str | None = None


TEMPLATES: dict[str, Template] = {
    "chat": Template(task="chat", user="{text}"),
    "rephrase_wikipedia": Template(
        task="rephrase_wikipedia",
        system="You rewrite documents as clear, well-organized encyclopedia articles.",
        user=(
            "Rewrite the following text in the style of a Wikipedia article: neutral tone, "
            "complete sentences, no lists unless needed. Keep every fact; add none.\n\n"
            "Text:\n{text}"
        ),
    ),
    "rephrase_qa": Template(
        task="rephrase_qa",
        system="You turn documents into varied question-answer pairs.",
        user=(
            "Read the text below and write several diverse question-answer pairs about it "
            "(factual, yes/no, why and how questions). Write each as 'Question: ...' then "
            "'Answer: ...'. Use only facts from the text.\n\nText:\n{text}"
        ),
    ),
    "rephrase_distill": Template(
        task="rephrase_distill",
        system="You condense documents into short, precise prose.",
        user=(
            "Rewrite the text below as a concise paragraph that keeps its key information "
            "and drops filler.\n\nText:\n{text}"
        ),
    ),
    "rephrase_extract": Template(
        task="rephrase_extract",
        system="You extract the knowledge in a document.",
        user=(
            "Extract the informative content of the text below and restate it as a clear, "
            "self-contained passage a student could learn from. Leave out anything that is "
            "not knowledge (ads, navigation, chatter).\n\nText:\n{text}"
        ),
    ),
    "rephrase_list": Template(
        task="rephrase_list",
        system="You list the facts in a document.",
        user=(
            "List the key facts, definitions and numbers in the text below as a bulleted "
            "list, one fact per line.\n\nText:\n{text}"
        ),
    ),
    "math_problem": Template(
        task="math_problem",
        system="You write math word problems.",
        user=(
            "Write one new math problem inspired by the text below. The problem must have a "
            "single exact numerical answer. Write only the problem.\n\nText:\n{text}"
        ),
    ),
    "math_solution": Template(
        task="math_solution",
        system="You are a careful math tutor.",
        user=(
            "Solve the following problem. Reason step by step, then give the final answer "
            "in \\boxed{{}}.\n\nProblem: {problem}"
        ),
    ),
    "code_problem": Template(
        task="code_problem",
        system="You write programming exercises.",
        user=(
            "Write one new Python programming exercise inspired by the text below: state the "
            "function signature and what it must return.\n\nText:\n{text}"
        ),
    ),
    "code_solution": Template(
        task="code_solution",
        system="You are an expert Python programmer.",
        user=(
            "Solve the following problem in Python. Reply with one ```python code block "
            "containing the complete solution.\n\nProblem: {problem}"
        ),
    ),
    "code_solution_tests": Template(
        task="code_solution_tests",
        system="You are an expert Python programmer.",
        user=(
            "Solve the following problem in Python. Reply with one ```python code block "
            "containing the complete solution, then a second ```python code block with three "
            "assert statements that test it.\n\nProblem: {problem}"
        ),
    ),
}


def slots(text: str) -> list[str]:
    """The `{field}` names a message uses."""
    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


@dataclass(frozen=True)
class PromptBuilder:
    """Renders chat messages for one seed row."""

    task: str
    user: str
    system: str | None

    @classmethod
    def from_config(cls, template: str | None, system: str | None, user: str | None) -> "PromptBuilder":
        base = TEMPLATES[template] if template else Template(task="custom", user=user or "{text}")
        return cls(
            task=base.task,
            user=user if user is not None else base.user,
            system=system if system is not None else base.system,
        )

    @classmethod
    def for_prompt(cls, prompt) -> list[tuple[str | None, "PromptBuilder"]]:
        """The builders a `PromptConfig` asks for: one per name of `templates`, else one
        (named None: a single template or a custom message, whose rows keep their plain ids)."""
        if prompt.templates:
            return [(t, cls.from_config(t, None, None)) for t in prompt.templates]
        return [(None, cls.from_config(prompt.template, prompt.system, prompt.user))]

    def required_fields(self) -> set[str]:
        return set(slots(self.user)) | set(slots(self.system or ""))

    def check_fields(self, available: set[str], where: str) -> None:
        missing = self.required_fields() - available
        if missing:
            raise SynthError(
                f"{where}: the prompt uses {{{sorted(missing)[0]}}} but the seeds have no such "
                f"column (columns: {', '.join(sorted(available))}); fix prompt.user or the seeds"
            )

    def messages(self, row: dict) -> list[dict]:
        values = {k: ("" if v is None else v) for k, v in row.items()}
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": self.system.format(**values)})
        msgs.append({"role": "user", "content": self.user.format(**values)})
        return msgs
