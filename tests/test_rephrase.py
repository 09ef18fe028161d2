"""rephrase_clean: every edit and every reject reason has a case that triggers it and a near
miss that does not. Rows carry what generation gives them: task (the style), finish_reason,
seed_text and the chat messages rendered by the style's own template."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from synth.errors import SynthError
from synth.stages.prompt import PromptBuilder
from synth.stages.rephrase import REASONS, RephraseClean, clean, copy_fraction, qa_pairs

SEED = ("The Nile is a major river in northeastern Africa. It flows north for about 6,650 "
        "kilometres and drains into the Mediterranean Sea. Its water made farming possible in "
        "ancient Egypt, where the yearly flood left rich silt on the fields.")


def row(response, task="rephrase_wikipedia", finish="stop", seed=SEED) -> dict:
    msgs = PromptBuilder.from_config(task, None, None).messages({"text": seed})
    return {"response": response, "task": task, "finish_reason": finish, "seed_text": seed,
            "messages": json.dumps(msgs)}


def check(r: dict, **params):
    return RephraseClean(**params).check(r["response"], r)


# --------------------------------------------------------------------------- edits

# (response, cleaned text, edits)
EDITS = [
    ("Sure! Here is a rewritten version of the text in the style of a Wikipedia article:\n\n"
     "Rivers carry water to the sea.", "Rivers carry water to the sea.", ["preamble"]),
    ("Here's the passage rewritten: Rivers carry water to the sea.",
     "Rivers carry water to the sea.", ["preamble"]),
    ("Certainly!\n\nRivers carry water to the sea.", "Rivers carry water to the sea.", ["preamble"]),
    ("Sure, here it is.\nRivers carry water to the sea.", "Rivers carry water to the sea.", ["preamble"]),
    ("**Rewritten Text:**\n\nRivers carry **water** to the sea.", "Rivers carry water to the sea.",
     ["preamble", "markdown"]),
    ("Rivers carry water to the sea.\n\nI hope this helps! Let me know if you need more.",
     "Rivers carry water to the sea.", ["closing"]),
    ("Rivers carry water to the sea.\n\nNote: I kept every fact from the original text.",
     "Rivers carry water to the sea.", ["closing"]),
    ("Rivers carry water to the sea.\nThis version keeps all the facts of the original.",
     "Rivers carry water to the sea.", ["closing"]),
    ("```markdown\n# Rivers\n\nRivers carry water to the sea.\n```", "# Rivers\n\nRivers carry water to the sea.",
     ["wrapper"]),
    ('"Rivers carry water to the sea."', "Rivers carry water to the sea.", ["wrapper"]),
    ("Here is the rewritten text:\n```\nRivers carry water to the sea.\n```\nHope this helps!",
     "Rivers carry water to the sea.", ["preamble", "closing", "wrapper"]),
    ("Rivers carry water to the sea.   \n\n\n\nThey are long.", "Rivers carry water to the sea.\n\nThey are long.", []),
    # near misses: content that only looks like chatter stays
    ("Here is where the Nile meets the sea. The delta is wide.",
     "Here is where the Nile meets the sea. The delta is wide.", []),
    ("Sure enough, the river flooded every year.", "Sure enough, the river flooded every year.", []),
    ("Rivers carry silt.\nNote that the silt made the fields rich.",
     "Rivers carry silt.\nNote that the silt made the fields rich.", []),
    ("Question: What does the Nile carry?\nAnswer: Water and silt.",
     "Question: What does the Nile carry?\nAnswer: Water and silt.", []),
    ('He said "the river" and "the sea".', 'He said "the river" and "the sea".', []),
    ("I hope this helps!", "I hope this helps!", []),  # never the whole text
]


@pytest.mark.parametrize("response,text,edits", EDITS, ids=[f"edit{i}" for i in range(len(EDITS))])
def test_clean_edits(response, text, edits):
    assert clean(response) == (text, edits)


def test_truncated_prose_is_trimmed_to_its_last_sentence():
    r = row("The Nile flows north through Egypt and Sudan to the sea. Its yearly flood left silt "
            "on the fields. Farmers", finish="length")
    text, edits, reason = check(r)
    assert reason is None and "trimmed" in edits
    assert text.endswith("on the fields.")


def test_stage_writes_text_edits_and_reasons():
    rows = [row("Sure! Here is the article:\n\nThe Nile is long."),
            row(""),
            row("The Nile is long.")]
    t = pa.Table.from_pylist(rows)
    t = t.append_column("reject_reason", pa.array([None, None, "decontam"], pa.string()))
    out = RephraseClean()(t)
    assert out.column("text").to_pylist() == ["The Nile is long.", "", "The Nile is long."]
    assert out.column("rephrase_edits").to_pylist() == ["preamble", None, None]
    assert out.column("reject_reason").to_pylist() == [None, "rephrase.empty", "decontam"]
    assert out.column("response").to_pylist()[0].startswith("Sure!")  # left as generated


# --------------------------------------------------------------------------- reasons

ANSWERED = "Question: Where does the Nile flow?\nAnswer: North, to the Mediterranean Sea."
# reason -> (trigger row, near miss row)
CASES = {
    "rephrase.empty": (
        row("Sure! Here is the rewritten text:"),
        row("Sure! Here is the rewritten text: The Nile flows north."),
    ),
    "rephrase.echo_prompt": (  # 8 words of the instructions in a row
        row("Rewrite the following text in the style of a Wikipedia article. The Nile is long."),
        row("The Nile is described in the style of a Wikipedia article here."),  # 7 words
    ),
    "rephrase.copy": (
        row(SEED),
        row("The Nile is a major river in northeastern Africa. It runs some 6,650 km north, "
            "ending in the Mediterranean. Egyptian farming depended on it: each flood spread "
            "fertile silt."),
    ),
    "rephrase.truncated": (
        row("The Nile flows north through Egypt and Sudan to the Mediterranean. Its yearly "
            "flood left rich silt on the fields, which allowed the farmers of ancient Egypt to "
            "grow wheat and barley in a land that was otherwise desert, and over the centuries "
            "a great civilization grew up along", finish="length"),
        row("The Nile flows north through Egypt and Sudan to the Mediterranean, and its yearly "
            "flood left rich silt on the fields of the ancient farmers. Over the", finish="length"),
    ),
    "rephrase.no_qa_pairs": (
        row("The Nile flows north. Where does it end? In the Mediterranean.", task="rephrase_qa"),
        row("Where does the Nile flow?\nAnswer: North, to the Mediterranean Sea.", task="rephrase_qa"),
    ),
    "rephrase.no_list_items": (
        row("The Nile flows north. It is about 6,650 km long.", task="rephrase_list"),
        row("1. The Nile flows north.", task="rephrase_list"),
    ),
}


def test_every_reason_has_a_case():
    assert set(CASES) == set(REASONS)


@pytest.mark.parametrize("reason", list(CASES))
def test_reason_trigger_and_near_miss(reason):
    trigger, near_miss = CASES[reason]
    assert check(trigger)[2] == reason
    assert check(near_miss)[2] is None
    assert check(trigger, disable=[reason])[2] != reason


# Structure-aware trimming: (style, reply cut at max_tokens, kept text or None = truncated)
TRUNCATED = [
    ("rephrase_list", "- The Nile flows north.\n- It is 6,650 km long.\n- Its flood", "- The Nile flows north.\n- It is 6,650 km long."),
    ("rephrase_list", "- The Nile flows north.\n- It is 6,650 km long.", "- The Nile flows north.\n- It is 6,650 km long."),
    ("rephrase_list", "- The Nile flo", None),
    ("rephrase_qa", ANSWERED + "\n\nQuestion: Why did farming depend on it?\nAnswer: Because the",
     ANSWERED),
    ("rephrase_qa", ANSWERED + "\nQuestion: How long is", ANSWERED),
    ("rephrase_qa", "Question: Why did farming depend on it?\nAnswer: Because the", None),
    ("rephrase_distill", "The Nile flows north. It was the longest river known to the ancient", None),  # < half
    ("rephrase_distill", "The Nile flows north to the sea through Egypt. It", "The Nile flows north to the sea through Egypt."),
]


@pytest.mark.parametrize("style,reply,kept", TRUNCATED, ids=[f"trunc{i}" for i in range(len(TRUNCATED))])
def test_truncated_replies_keep_what_is_whole(style, reply, kept):
    text, _, reason = check(row(reply, task=style, finish="length"))
    if kept is None:
        assert reason == "rephrase.truncated"
    else:
        assert (reason, text) == (None, kept)


def test_truncation_matters_only_when_cut():
    assert check(row("The Nile flows north and", finish="stop"))[2] is None
    # a cut list that never was a list is named for what it lacks
    assert check(row("The Nile flows", task="rephrase_list", finish="length"))[2] == "rephrase.no_list_items"


@pytest.mark.parametrize("text,n", [
    (ANSWERED, 1),
    ("Q: Where?\nA: North.\nQ2: How long?\nA2: 6,650 km.", 2),
    ("**Question 1:** Where does it flow? **Answer:** North.", 1),
    ("1. Question: Where?\n   Answer: North.\n2. Question: Why?\n   Answer:", 1),  # empty answer
    ("Question: Where?\nQuestion: Why?\nAnswer: Silt.", 1),
    ("Answer: North.", 0),
])
def test_qa_pairs(text, n):
    assert len(qa_pairs(clean(text)[0])) == n


def test_copy_fraction_counts_copied_ngrams():
    assert copy_fraction(SEED, SEED, 8) == 1.0
    assert copy_fraction("short text", SEED, 8) == 0.0


def test_style_parameter_and_other_tasks():
    prose = row("The Nile flows north. It is long.", task="chat")
    assert check(prose)[2] is None  # not a rephrase style: generic checks only
    assert check(prose, style="rephrase_list")[2] == "rephrase.no_list_items"


@pytest.mark.parametrize("params,match", [
    ({"style": "rephrase_wiki"}, "unknown style.*rephrase_wikipedia"),
    ({"disable": ["rephrase.emtpy"]}, "unknown reason.*rephrase.empty"),
    ({"max_copy_fraction": 0}, "max_copy_fraction"),
])
def test_bad_params(params, match):
    with pytest.raises(SynthError, match=match):
        RephraseClean(**params)
