"""`import synth` stays light: no torch, vLLM, Ray or transformers until they are used."""

import subprocess
import sys


def test_import_synth_is_light():
    code = (
        "import sys, synth, synth.config, synth.cli, synth.pipeline.run, synth.io.shards, synth.io.seeds;"
        "heavy = [m for m in ('torch', 'vllm', 'ray', 'transformers', 'polars', 'datasets') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
