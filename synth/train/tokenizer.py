"""The student's tokenizer is the embedded teacher's (SmolLM2): one vocabulary for both.

A checkpoint carries a copy of `tokenizer.json` and the chat template, so it is self-contained;
`tokenizer_id` (a hash of tokenizer.json) is how data and checkpoints prove they match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from synth.errors import SynthError

TOKENIZER_FILE = "tokenizer.json"
TEMPLATE_FILE = "chat_template.jinja"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Tok:
    """A loaded tokenizer with the ids the trainer needs."""

    path: Path  # the folder holding tokenizer.json (and the chat template)
    tokenizer: object  # tokenizers.Tokenizer
    sha256: str
    vocab_size: int
    eos_id: int  # ends an assistant turn (<|im_end|>)
    doc_sep_id: int  # separates documents in a pretraining stream (<|endoftext|>)
    chat_template: str | None

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text the teacher saw (vLLM renders the same Jinja template)."""
        if not self.chat_template:
            raise SynthError(f"no {TEMPLATE_FILE} beside {self.path / TOKENIZER_FILE}")
        import jinja2

        env = jinja2.Environment(keep_trailing_newline=True)
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt)


def load_tokenizer(folder: str | Path | None = None) -> Tok:
    """Load from a model or checkpoint folder; default: the embedded model (pulled if needed)."""
    from tokenizers import Tokenizer

    if folder is None:
        from synth.models import DEFAULT_MODEL, resolve

        folder = resolve(DEFAULT_MODEL)
    folder = Path(folder)
    tj = folder / TOKENIZER_FILE
    if not tj.exists():
        raise SynthError(f"no {TOKENIZER_FILE} in {folder}")
    tok = Tokenizer.from_file(str(tj))
    tmpl = folder / TEMPLATE_FILE
    chat_template = tmpl.read_text(encoding="utf-8") if tmpl.exists() else None
    if chat_template is None and (folder / "tokenizer_config.json").exists():
        chat_template = json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template")

    def tid(token: str, fallback: int) -> int:
        i = tok.token_to_id(token)
        return fallback if i is None else i

    return Tok(path=folder, tokenizer=tok, sha256=file_sha256(tj), vocab_size=tok.get_vocab_size(),
               eos_id=tid("<|im_end|>", 2), doc_sep_id=tid("<|endoftext|>", 0),
               chat_template=chat_template)


def copy_tokenizer(tok: Tok, dest: Path) -> None:
    import shutil

    shutil.copyfile(tok.path / TOKENIZER_FILE, dest / TOKENIZER_FILE)
    if tok.chat_template:
        (dest / TEMPLATE_FILE).write_text(tok.chat_template, encoding="utf-8")
