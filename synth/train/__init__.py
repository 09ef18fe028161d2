"""Training the bundled hybrid model on synth's shards: pretraining and multi-teacher distillation.

    config.py     TrainConfig: every knob of a run, written to DIR/train.json
    tokenizer.py  the embedded teacher's tokenizer (student and teacher share a vocabulary)
    data.py       token windows from `text` shards; teacher sequences with top-k log-probs
    kd.py         distillation losses (top-k offline, full-vocabulary online)
    teachers.py   teachers run in the loop (a hybrid checkpoint or a Hugging Face model folder)
    checkpoint.py safetensors checkpoints with their config, written atomically
    loop.py       the training loop, `train(cfg)`
    plot.py       the loss-curve PNG beside the checkpoints

torch is imported by these modules; `import synth` never imports them.
"""
