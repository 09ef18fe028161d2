"""Orchestration: `run` (the streaming dataflow of one pipeline), `prompts` (seeds -> units
-> prompts), `chain` (pipelines and training steps in order)."""
