"""The stage contract (`synth.stages.base.Stage`): parameters checked once by the loader's code,
reject reasons merged (the first wins), columns set once, rows counted per reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa
import pytest

from synth.errors import SynthError
from synth.stages.base import ParamError, Result, Stage, check_names


@dataclass(frozen=True)
class ToyParams:
    min_len: int = 3
    drop_long: bool = False
    modes: list = dataclasses.field(default_factory=lambda: ["short"])

    def check(self) -> None:
        check_names("modes", self.modes, ("short", "long"), "mode")
        if self.min_len < 0:
            raise ParamError("min_len", f"must be >= 0; got {self.min_len}")


class Toy(Stage):
    """Writes `length`; rejects texts shorter than min_len ("toy.short") and, with drop_long,
    longer than 10 ("toy.long"). Records what compute saw."""

    name = "toy"
    Params = ToyParams
    reasons = ("toy.short", "toy.long")

    def __init__(self, skip=True, **params):
        self.skip_rejected = skip
        super().__init__(**params)
        self.seen: list[list[str]] = []

    def compute(self, batch) -> Result:
        texts = batch.column("text").to_pylist()
        self.seen.append(texts)
        lengths = [len(t) for t in texts]
        reasons = ["toy.short" if n < self.params.min_len else
                   "toy.long" if self.params.drop_long and n > 10 else None for n in lengths]
        return Result({"length": (lengths, pa.int64())}, reasons)


def _table(texts, prior=None, **cols):
    data = {"text": texts, **cols}
    if prior is not None:
        data["reject_reason"] = pa.array(prior, pa.string())
    return pa.table(data)


def test_first_reason_wins_and_rejected_rows_are_skipped():
    stage = Toy()
    t = _table(["ab", "abcd", "x", "abcdef"], prior=[None, "earlier", "earlier", None],
               length=pa.array([7, 8, 9, 10], pa.int64()))
    out = stage(t)
    assert stage.seen == [["ab", "abcdef"]]  # rows rejected before are not re-checked
    assert out.column("reject_reason").to_pylist() == ["toy.short", "earlier", "earlier", None]
    # a skipped row keeps the value its table had; the others get the new one
    assert out.column("length").to_pylist() == [2, 8, 9, 6]
    assert out.column_names == t.column_names  # both replaced in place


def test_new_column_is_null_on_skipped_rows_and_reason_column_comes_last():
    out = Toy()(_table(["ab", "abcd"], prior=["earlier", None]))
    assert out.column("length").to_pylist() == [None, 4]
    out = Toy()(_table(["ab", "abcd"]))
    assert out.column_names == ["text", "length", "reject_reason"]
    assert out.column("reject_reason").to_pylist() == ["toy.short", None]


def test_process_all_rows_still_keeps_the_earlier_reason():
    stage = Toy(skip=False)
    out = stage(_table(["ab", "abcd", "x"], prior=["earlier", None, None]))
    assert stage.seen == [["ab", "abcd", "x"]]
    assert out.column("length").to_pylist() == [2, 4, 1]
    assert out.column("reject_reason").to_pylist() == ["earlier", None, "toy.short"]


def test_no_reasons_leaves_reject_reason_alone():
    class Measure(Toy):
        def compute(self, batch):
            return Result({"length": (batch.column("text").to_pylist(), pa.string())})

    assert "reject_reason" not in Measure()(_table(["a", "b"])).column_names
    out = Measure()(_table(["a", "b"], prior=["earlier", None]))
    assert out.column("reject_reason").to_pylist() == ["earlier", None]


def test_counts_per_reason_over_batches():
    stage = Toy(drop_long=True)
    stage(_table(["ab", "abcd", "abcdefghijkl"], prior=[None, None, None]))
    stage(_table(["x", "abcd", "abcd"], prior=["earlier", None, None]))
    c = stage.counts
    assert (c.rows, c.kept, c.rejected_before) == (6, 3, 1)
    assert dict(c.rejected) == {"toy.short": 1, "toy.long": 1}
    assert c.to_dict()["rejected"] == {"toy.long": 1, "toy.short": 1}
    assert c.rows == c.kept + c.rejected_before + sum(c.rejected.values())


def test_all_rows_rejected_before():
    stage = Toy()
    out = stage(_table(["a", "b"], prior=["x", "y"]))
    assert stage.seen == [[]]
    assert out.column("reject_reason").to_pylist() == ["x", "y"]
    assert out.column("length").to_pylist() == [None, None]


def test_contract_bugs_are_loud():
    class Undeclared(Toy):
        reasons = ("toy.short",)

    with pytest.raises(RuntimeError, match="'toy.long' is not declared"):
        Undeclared(drop_long=True)(_table(["abcdefghijklmn"]))

    class Short(Toy):
        def compute(self, batch):
            return Result(reasons=[None])

    with pytest.raises(RuntimeError, match="1 values for 'reject_reason'"):
        Short()(_table(["a", "b"]))


@pytest.mark.parametrize("params,message", [
    ({"min_len": -1}, "min_len must be >= 0; got -1"),
    ({"min_len": "3"}, "min_len must be an integer; got '3'"),
    ({"modes": ["shrot"]}, "modes: unknown mode 'shrot'; did you mean 'short'?"),
    ({"modes": ["x"]}, "modes: unknown mode 'x'; modes: short, long"),
    ({"modes": [1]}, "modes must be a list of names; got [1]"),
])
def test_params_are_checked(params, message):
    """Building the stage and loading a pipeline file give the same message, located."""
    with pytest.raises(SynthError) as e:
        Toy(**params)
    assert str(e.value) == f"toy: {message}"
    with pytest.raises(SynthError) as e:
        Toy.validate(params, "p.yaml", "stages[0].toy.")
    assert str(e.value) == f"p.yaml: stages[0].toy.{message}"


def test_unknown_keyword_is_a_type_error_with_a_hint():
    with pytest.raises(TypeError, match="unexpected parameter 'min_lne'; did you mean 'min_len'"):
        Toy(min_lne=3)


def test_every_registered_stage_follows_the_contract():
    from synth.stages.registry import STAGES

    for name, (cls, params) in STAGES.items():
        assert issubclass(cls, Stage) and cls.Params is params and cls.name == name
        assert cls.reasons and all(isinstance(r, str) for r in cls.reasons)
        assert dataclasses.is_dataclass(params)
