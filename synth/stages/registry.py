"""The one table that maps stage names, as written in pipeline files, to the stage class and
the dataclass of its parameters. Stages run on every generated batch, in the listed order.

Every class is a `synth.stages.base.Stage` whose `Params` is the second entry: the pipeline
loader checks a stage's parameters with it (`synth.config.build_params`) before any work
starts, and `cls(**params)` is a callable `pyarrow.Table -> pyarrow.Table` (Ray Data's
`map_batches` builds one per actor; a stateful stage loads in `__init__`).

No import-time registration: adding a stage means adding a line here.
"""

from __future__ import annotations

from synth.stages.decontam import Decontam, DecontamParams
from synth.stages.filters import QualityFilter, QualityFilterParams
from synth.stages.rephrase import RephraseClean, RephraseCleanParams
from synth.stages.verify import VerifyCode, VerifyCodeParams, VerifyMath, VerifyMathParams

STAGES: dict[str, tuple[type, type]] = {
    "verify_math": (VerifyMath, VerifyMathParams),
    "verify_code": (VerifyCode, VerifyCodeParams),
    "quality_filter": (QualityFilter, QualityFilterParams),
    "decontam": (Decontam, DecontamParams),
    "rephrase_clean": (RephraseClean, RephraseCleanParams),
}
