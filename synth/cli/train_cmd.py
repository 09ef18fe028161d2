"""`synth train pretrain | distill | sample`: the bundled hybrid model on synth's shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from synth.cli.common import stderr_console, user_errors

app = typer.Typer(help="Train the bundled hybrid model on shards, or sample from a checkpoint.",
                  no_args_is_help=True)

Data = Annotated[list[Path], typer.Option("--data", help="Shard folders or files (repeatable).")]
Out = Annotated[Path, typer.Option("--out", help="Training folder: checkpoint/, metrics.jsonl, loss_curve.png.")]
Config = Annotated[str, typer.Option("--config", help="Model config: tiny, small, or a .json file.")]
Steps = Annotated[int, typer.Option(help="Optimizer steps (a rerun with more steps continues).")]
Batch = Annotated[int, typer.Option(help="Sequences per step.")]
SeqLen = Annotated[int, typer.Option(help="Tokens per sequence.")]
Lr = Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then cosine).")]
Nvfp4 = Annotated[bool, typer.Option("--nvfp4", help="NVFP4 4-bit fake-quantized training.")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Discard a run in --out and start over.")]
Seed = Annotated[int, typer.Option(help="Seed for the init and the batch order.")]
EvalEvery = Annotated[int, typer.Option(help="Steps between eval-loss measurements.")]
CkptEvery = Annotated[int, typer.Option(help="Steps between checkpoints.")]
Init = Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights.")]
Threads = Annotated[int, typer.Option(help="torch threads (0: all cores).")]
Precision = Annotated[str, typer.Option(help="bf16 (autocast matmuls, fp32 weights) or fp32.")]
SkipBad = Annotated[bool, typer.Option(
    "--skip-bad-inputs", help="Leave out unreadable or corrupt shards (listed in OUT/train.json "
    "as skipped_inputs) instead of stopping.")]


def _weights(pairs: list[str], what: str) -> dict[str, float]:
    from synth.errors import SynthError

    out = {}
    for p in pairs:
        name, sep, w = p.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(w)
        except ValueError:
            raise SynthError(f"{what} {p!r}: write NAME=WEIGHT, e.g. math=0.5") from None
    return out


def _run(cfg, fresh: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from synth.train.loop import train

    console = stderr_console()
    progress = Progress(
        TextColumn(f"[bold]{cfg.mode}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("steps · {task.fields[tokens]} tokens · {task.fields[rate]} tok/s · loss {task.fields[loss]}"),
        TimeElapsedColumn(), console=console,
    )
    task = None

    def on_progress(p: dict) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("train", total=p["steps"], tokens=0, rate="-", loss="-")
        progress.update(task, completed=p["step"], tokens=p["tokens"], rate=f"{p['tok_per_s']:.0f}",
                        loss=f"{p['loss']:.3f}")

    try:
        r = train(cfg, fresh=fresh, on_progress=on_progress, log=lambda m: console.print(m))
    except KeyboardInterrupt:
        if task is not None:
            progress.stop()
        typer.echo(f"interrupted; the last checkpoint in {cfg.out} is kept. Resume by running the "
                   "same command again.", err=True)
        raise typer.Exit(130) from None
    finally:
        if task is not None:
            progress.stop()
    if r.resumed_from >= r.steps:
        typer.echo(f"{r.out}: already trained {r.steps} steps (--steps more to continue, --fresh to restart)")
    typer.echo(f"{cfg.mode}: {r.steps} steps, {r.tokens} tokens, {r.params / 1e6:.2f}M params, "
               f"{r.tokens_per_s:.0f} tok/s; train loss {r.loss:.3f} (cross-entropy {r.ce:.3f}), "
               f"eval cross-entropy {r.eval_loss:.3f}")
    if r.teacher_mix:
        typer.echo("teacher mix: " + ", ".join(f"{k} {v:.2f}" for k, v in r.teacher_mix.items()))
    typer.echo(f"checkpoint: {r.checkpoint}")
    typer.echo(f"loss curve: {r.out / 'loss_curve.png'}")


def _text_column(data: list[Path], column: str | None, skip_bad: bool) -> str:
    """The one rule of every command: --column, else `text` when the shards have it, else
    `response` (what `synth run` shards hold)."""
    from synth.cli.curate_cmd import pick_column

    if column or not data:
        return column or "text"
    if not Path(data[0]).exists():
        return "text"  # the data loader says what is missing
    return pick_column(data[0], None, skip_bad)


@app.command()
def pretrain(
    data: Data, out: Out, config: Config = "tiny", steps: Steps = 200, batch_size: Batch = 8,
    seq_len: SeqLen = 256, lr: Lr = 3e-3, nvfp4: Nvfp4 = False, init: Init = None,
    column: Annotated[Optional[str], typer.Option(
        help="The shard column holding documents (default: `text` if the shards have it, else `response`).")] = None,
    eval_every: EvalEvery = 50, ckpt_every: CkptEvery = 50, seed: Seed = 0, threads: Threads = 0,
    precision: Precision = "bf16", fresh: Fresh = False, skip_bad_inputs: SkipBad = False,
) -> None:
    """Next-token + multi-token-prediction pretraining on a text column of shards."""
    from synth.train.config import TrainConfig

    with user_errors():
        column = _text_column(data, column, skip_bad_inputs)
        cfg = TrainConfig(mode="pretrain", data=tuple(str(d) for d in data), out=str(out),
                          model=config, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                          nvfp4=nvfp4, init=str(init) if init else None, column=column,
                          eval_every=eval_every, ckpt_every=ckpt_every, seed=seed, threads=threads,
                          precision=precision, skip_bad_inputs=skip_bad_inputs)
        _run(cfg, fresh)


@app.command()
def distill(
    data: Data, out: Out, config: Config = "tiny", steps: Steps = 200, batch_size: Batch = 8,
    seq_len: SeqLen = 256, lr: Lr = 3e-3, nvfp4: Nvfp4 = False, init: Init = None,
    teacher: Annotated[list[str], typer.Option(
        help="Online: a teacher run in the loop, PATH or PATH=WEIGHT (a synth checkpoint, an HF "
             "folder or smollm2-135m); repeatable. Without it, distil offline from the shards' "
             "top-k log-probs.")] = [],  # noqa: B006 - Typer needs a list default
    teacher_weight: Annotated[list[str], typer.Option(
        help="Offline: NAME=WEIGHT, the share of rows from each value of the `teacher` column.")] = [],  # noqa: B006
    temperature: Annotated[float, typer.Option(help="Distillation temperature.")] = 1.0,
    kd_weight: Annotated[float, typer.Option(help="loss = w*KD + (1-w)*CE.")] = 0.9,
    column: Annotated[Optional[str], typer.Option(
        help="Online: the shard column holding documents (default: `text` if the shards have it, else `response`).")] = None,
    eval_every: EvalEvery = 50, ckpt_every: CkptEvery = 50, seed: Seed = 0, threads: Threads = 0,
    precision: Precision = "bf16", fresh: Fresh = False, skip_bad_inputs: SkipBad = False,
) -> None:
    """Multi-teacher distillation: offline from stored top-k log-probs, or online from teachers."""
    from synth.train.config import TrainConfig

    with user_errors():
        online = []
        for t in teacher:
            name, sep, w = t.rpartition("=")
            try:
                online.append((name, float(w)) if sep and name else (t, 1.0))
            except ValueError:
                online.append((t, 1.0))
        column = _text_column(data, column, skip_bad_inputs) if online else (column or "text")
        cfg = TrainConfig(mode="distill", data=tuple(str(d) for d in data), out=str(out),
                          model=config, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                          nvfp4=nvfp4, init=str(init) if init else None, column=column,
                          teachers=tuple(n for n, _ in online),
                          online_weights=tuple(w for _, w in online) if online else (),
                          teacher_weights=_weights(teacher_weight, "--teacher-weight"),
                          temperature=temperature, kd_weight=kd_weight, eval_every=eval_every,
                          ckpt_every=ckpt_every, seed=seed, threads=threads, precision=precision,
                          skip_bad_inputs=skip_bad_inputs)
        _run(cfg, fresh)


@app.command()
def sample(
    checkpoint: Annotated[Path, typer.Argument(help="A training folder or its checkpoint/.")],
    prompt: Annotated[str, typer.Option(help="The prompt text.")],
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option()] = 1.0,
    seed: Seed = 0,
    chat: Annotated[bool, typer.Option("--chat/--raw", help="Wrap the prompt in the chat template.")] = False,
    speculative: Annotated[bool, typer.Option(
        "--speculative", help="Self-speculative decoding with the MTP head (greedy only).")] = False,
    max_drafts: Annotated[Optional[int], typer.Option(
        help="With --speculative: most tokens drafted per round; the round length adapts "
             "between 1 and this to how often drafts are accepted. Default: one per MTP depth "
             "(more chain the last depth on its own output).")] = None,
) -> None:
    """Generate from a checkpoint with the KV/SSM cache, optionally self-speculative."""
    with user_errors():
        from synth.errors import SynthError
        from synth.train.sample import generate_text

        if speculative and temperature > 0:
            raise SynthError("--speculative decodes greedily; drop --temperature")
        text, stats = generate_text(checkpoint, prompt, max_tokens=max_tokens, temperature=temperature,
                                    top_p=top_p, seed=seed, chat=chat, speculative=speculative,
                                    max_drafts=max_drafts)
    dt = stats["seconds"]
    typer.echo(text)
    n = stats.get("tokens", 0)
    extra = ""
    if speculative:
        extra = f", {stats.get('accepted', 0)}/{stats.get('drafted', 0)} drafts accepted"
    typer.echo(f"[{n} tokens in {dt:.2f}s = {n / dt if dt else 0:.1f} tok/s, "
               f"{stats.get('forward_calls', '?')} forward calls{extra}]", err=True)
