"""The generate stage lives in `synth.backends.generate`; re-exported here for its old name."""

from synth.backends.generate import (PROMPT_COLUMNS, GenerateBatch, generate_table,  # noqa: F401
                                     output_schema, valid_text)
