"""Turn global dedup decisions into a row stage, so `apply_stage` writes kept rows to OUT/ and
duplicates to OUT/rejects/ like every other curation step.

Decisions (from `synth.stages.dedup.dedup_decisions` or `synth.stages.semantic`) have one row
per input id: `id`, `cluster_id`, `keep`, `reason`, `duplicate_of`. Every output row gets
`cluster_id` (and `duplicate_of`); a dropped row gets `reject_reason` = its dedup reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.errors import SynthError
from synth.stages.base import Result, Stage
from synth.stages.dedup import REASON_EXACT, REASON_MINHASH
from synth.stages.semantic import REASON as REASON_SEMANTIC


@dataclass(frozen=True)
class ApplyDecisionsParams:
    id_column: str = "id"


class ApplyDecisions(Stage):
    name = "apply_dedup"
    Params = ApplyDecisionsParams
    reasons = (REASON_EXACT, REASON_MINHASH, REASON_SEMANTIC)
    skip_rejected = False  # every row gets its cluster_id

    def __init__(self, decisions, id_column: str = "id"):
        super().__init__(id_column=id_column)
        cols = decisions.to_pydict()
        self.by_id = {
            i: (c, k, r, d)
            for i, c, k, r, d in zip(cols["id"], cols["cluster_id"], cols["keep"], cols["reason"],
                                     cols["duplicate_of"])
        }
        self.id_column = id_column

    def compute(self, table) -> Result:
        import pyarrow as pa

        if self.id_column not in table.column_names:
            raise SynthError(f"no id column {self.id_column!r} (columns: {', '.join(table.column_names)})")
        ids = table.column(self.id_column).to_pylist()
        cluster, dup, reasons = [], [], []
        for i in ids:
            c, keep, reason, d = self.by_id.get(str(i), (str(i), True, None, None))
            cluster.append(c)
            dup.append(d)
            reasons.append(None if keep else reason)
        return Result({"cluster_id": (cluster, pa.string()), "duplicate_of": (dup, pa.string())},
                      reasons)


def decisions_for(files, d) -> "object":
    """Run the configured dedup (`synth.config.DedupConfig` or the same fields) over shards."""
    if d.method == "semantic":
        from synth.stages.semantic import semantic_decisions

        return semantic_decisions(files, column=d.column, threshold=d.threshold,
                                  quality_column=d.quality_column)
    from synth.stages.dedup import dedup_decisions

    return dedup_decisions(files, method=d.method, column=d.column, threshold=d.threshold,
                           num_perm=d.num_perm, shingle=d.shingle, ngram=d.ngram,
                           quality_column=d.quality_column)


def dedup_in_place(out_dir, d) -> dict[str, int]:
    """Dedup a run's own shards: each shard is rewritten with `cluster_id` on every row and its
    duplicates moved to `rejects/<shard>-dedup.parquet` (rejects first, then the kept shard
    replaces the old one atomically; a rerun recomputes the same result).

    A shard deduped before (an earlier run, or a pass cut off by a kill) may already have a
    rejects file: its rows that are no longer in the shard stay there, next to the rows this
    pass moves, so a rerun that adds rows never drops the duplicates found before, and a row
    both in the shard and in its rejects (a pass killed between the two writes) ends up in one
    place only. `out_dir` is a local path or a URI (see `synth.io.shards`)."""
    from synth.io import shards as sh

    files = sh.list_shards(out_dir)
    if not files:
        return {}
    apply = ApplyDecisions(decisions_for(files, d))
    dropped: dict[str, int] = {}
    for f in files:
        table = apply(sh.read_table(f))
        stem = sh.name_of(f).removesuffix(".parquet")
        reject_path = sh.join(out_dir, sh.REJECTS, stem + "-dedup.parquet")
        earlier, stale = _earlier_rejects(reject_path, table)
        kept, rejected = sh.split_rejects(table)
        for r in rejected.column(sh.REJECT_COLUMN).to_pylist():
            dropped[r] = dropped.get(r, 0) + 1
        if rejected.num_rows or stale:
            if earlier is not None and earlier.num_rows:
                import pyarrow as pa

                rejected = pa.concat_tables([earlier, rejected], promote_options="permissive")
            if rejected.num_rows:
                sh.write_shard(rejected, sh.join(out_dir, sh.REJECTS), sh.name_of(reject_path))
            else:
                sh.remove(reject_path)
        if kept.num_rows:
            sh.write_shard(kept, out_dir, sh.name_of(f))
        elif table.num_rows:
            sh.remove(f)  # every row of this shard was a duplicate (now in rejects/)
    return dropped


def _earlier_rejects(path, table):
    """(rows of an earlier rejects file whose ids are not in `table`, whether it also holds
    rows that are: left there by a pass cut off before it rewrote the shard)."""
    import pyarrow.compute as pc

    from synth.io import shards as sh

    if not sh.exists(path):
        return None, False
    earlier = sh.read_table(path)
    rest = earlier.filter(pc.invert(pc.is_in(earlier.column("id"), value_set=table.column("id"))))
    return rest, rest.num_rows < earlier.num_rows
