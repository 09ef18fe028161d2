"""A compact hybrid language model: Mamba-2 + attention + mixture-of-experts, with multi-token
prediction and self-speculative decoding. Pure PyTorch, one file, read top to bottom:
config, building blocks, the model, then decoding.

The layer layout is a pattern string, one character per layer (as in Nemotron-H):

    M  Mamba-2 mixer            (Dao & Gu 2024, "Transformers are SSMs")
    *  grouped-query attention  (no positional encoding by default, like Nemotron-H)
    E  mixture-of-experts FF    (DeepSeek-V3 routing; optional Nemotron 3 latent experts)
    -  dense SwiGLU FF

Every layer is a pre-norm residual block `x + f(norm(x))`. After the last layer, `mtp_depths`
DeepSeek-V3 multi-token-prediction (MTP) modules predict tokens further ahead; they add a
training signal and serve as the drafter for self-speculative decoding.

What is covered: training forward with the loss (next token + MTP + sequence-wise balance
loss; the output-layer cross-entropy is fused and chunked, logits are only materialized when
read), bf16 autocast (scan, router and softmax stay fp32), aux-loss-free router balancing,
prefill/step decoding with conv, SSM and KV caches, greedy / temperature / top-p sampling,
greedy self-speculative decoding (one draft per MTP depth, one verify forward) whose output
equals plain greedy, an exact greedy argmax that reads an int8 copy of the output layer first,
and a hook that converts linears to NVFP4 (`synth.model.nvfp4`).
What is not covered: fused kernels (the SSD scan is plain einsums), Mamba-2 B/C groups
(ngroups = 1: B and C are shared by all heads), state resets inside packed sequences,
batched generation, speculative sampling at temperature > 0.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property

import torch
import torch.nn as nn
import torch.nn.functional as F

from synth.errors import SynthError

PATTERN_CHARS = {
    "M": "Mamba-2 mixer",
    "*": "attention",
    "E": "mixture-of-experts feed-forward",
    "-": "dense feed-forward",
}


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HybridConfig:
    vocab_size: int = 49152  # the SmolLM2 tokenizer (student and teacher share it)
    d_model: int = 128
    pattern: str = "M*EM-E"  # one char per layer, see PATTERN_CHARS
    # attention
    n_heads: int = 4
    n_kv_heads: int = 2
    rope: bool = False  # NoPE by default: the Mamba layers already carry position
    rope_theta: float = 10000.0
    # mamba-2
    d_state: int = 32
    expand: int = 2
    mamba_head_dim: int = 32
    d_conv: int = 4
    chunk_size: int = 64
    # feed-forward / moe
    d_ff: int = 384
    n_experts: int = 8
    top_k: int = 2
    d_expert: int = 128
    shared_expert: bool = True
    moe_latent: int = 0  # 0 = off; else routed experts run in this latent width (latent MoE)
    bias_update_rate: float = 1e-3
    seq_aux_weight: float = 1e-4
    # multi-token prediction
    mtp_depths: int = 1
    mtp_weight: float = 0.3
    # nvfp4
    nvfp4: bool = False
    nvfp4_keep_last: int = 1  # last N layers stay high precision
    tie_embeddings: bool = True
    max_seq_len: int = 2048  # the training context; decoding is not capped (no position table)
    norm_eps: float = 1e-5
    init_std: float = 0.02

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def mamba_heads(self) -> int:
        return self.d_inner // self.mamba_head_dim

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def validate(self) -> HybridConfig:
        """Raise SynthError naming every problem; return self when the config is usable."""
        bad = []
        unknown = sorted(set(self.pattern) - set(PATTERN_CHARS))
        if not self.pattern:
            bad.append("pattern is empty")
        elif unknown:
            known = ", ".join(f"{c!r} {what}" for c, what in PATTERN_CHARS.items())
            bad.append(f"pattern {self.pattern!r} has unknown layer chars {unknown} "
                       f"(known: {known})")
        positive = ["vocab_size", "d_model", "n_heads", "n_kv_heads", "d_state", "expand",
                    "mamba_head_dim", "d_conv", "chunk_size", "d_ff", "n_experts", "top_k",
                    "d_expert", "max_seq_len"]
        bad += [f"{name} must be >= 1 (got {getattr(self, name)})"
                for name in positive if getattr(self, name) < 1]
        non_negative = ["moe_latent", "mtp_depths", "nvfp4_keep_last", "mtp_weight",
                        "seq_aux_weight", "bias_update_rate", "norm_eps", "init_std"]
        bad += [f"{name} must be >= 0 (got {getattr(self, name)})"
                for name in non_negative if getattr(self, name) < 0]
        if self.n_heads >= 1 and self.d_model % self.n_heads:
            bad.append(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_kv_heads >= 1 and self.n_heads % self.n_kv_heads:
            bad.append(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.rope and self.n_heads >= 1 and self.head_dim % 2:
            bad.append(f"rope needs an even head dim (d_model/n_heads = {self.head_dim})")
        if self.mamba_head_dim >= 1 and self.d_inner % self.mamba_head_dim:
            bad.append(f"expand*d_model = {self.d_inner} is not divisible by "
                       f"mamba_head_dim {self.mamba_head_dim}")
        if self.top_k > self.n_experts:
            bad.append(f"top_k {self.top_k} > n_experts {self.n_experts}")
        if bad:
            raise SynthError("bad model config: " + "; ".join(bad))
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HybridConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SynthError(f"unknown model config keys {unknown}; known keys: {sorted(names)}")
        for f in fields(cls):
            value, want = d.get(f.name, f.default), type(f.default)
            fits = isinstance(value, want) and (want is bool or not isinstance(value, bool))
            if not (fits or (want is float and type(value) is int)):  # JSON writes 1.0 as 1
                raise SynthError(f"model config key {f.name!r} must be {want.__name__}, "
                                 f"got {value!r}")
        return cls(**d).validate()


# "tiny" (7.8M parameters, 1.5M outside the embedding) trains on 2 CPU cores; its cost is
# dominated by the 49152-way output layer, which is why d_model stays small. "small" (33.6M)
# is ~4.3x the parameters, twice the layers, with 16 latent experts.
CONFIGS = {
    "tiny": HybridConfig(),
    "small": HybridConfig(
        d_model=320, pattern="M*EM-EM*EM-E", n_heads=10, n_kv_heads=2, d_state=64,
        mamba_head_dim=64, d_ff=960, n_experts=16, d_expert=320, moe_latent=160,
    ),
}


def config_by_name(name: str) -> HybridConfig:
    if name not in CONFIGS:
        raise SynthError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def full_precision(x: torch.Tensor):
    """A context with autocast off, for the few computations that must not run in bf16. A
    no-op context when autocast is off (building a torch.autocast costs ~50 us, a lot per
    decode step)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def derived(module: nn.Module, name: str, key: tuple, build: Callable[[], object]):
    """A value computed from `module`'s weights (a transposed or quantized copy, stacked
    experts...), cached on it under `name` and rebuilt by `build()` whenever `key` changes:
    keys hold each weight's data_ptr (moved by .to() / .double()) and _version (bumped by an
    in-place update such as an optimizer step). Built outside inference mode, so the result
    is a normal tensor any later call may use."""
    cache = module.__dict__.setdefault("_derived", {})
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            hit = cache[name] = (key, build())
    return hit[1]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


class SwiGLU(nn.Module):
    """silu(x W_gate) * (x W_up) W_down. Gate and up share one matmul (fewer calls on CPU)."""

    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.w_in = nn.Linear(d_in, 2 * d_hidden, bias=False)
        self.w_out = nn.Linear(d_hidden, d_in, bias=False)
        self.w_out.residual_out = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w_in(x).chunk(2, dim=-1)
        return self.w_out(F.silu(gate) * up)


# ---- Mamba-2 and its scan -------------------------------------------------------------------
#
# The selective SSM of one head, per step t (h is a P x N matrix, x_t a P-vector, B_t, C_t
# N-vectors, dt_t > 0 and A < 0 scalars):
#     h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,      y_t = h_t C_t
# Unrolled, y_t = sum_{s<=t} (C_t . B_s) exp(a_{s+1} + ... + a_t) dt_s x_s with a_r = dt_r A:
# a causal "attention" whose mask is a product of decays. Mamba-2's state-space duality
# (Dao & Gu 2024, sec. 6) computes it chunk by chunk: inside a chunk the quadratic
# attention-like form (matmuls), across chunks the recurrence on the chunk-end states only.


def ssm_step(h, x, dt, A, B, C):
    """One step of the recurrence. h (b,H,P,N), x (b,H,P), dt (b,H), A (H,), B, C (b,N)."""
    decay = torch.exp(dt * A)[..., None, None]
    h = h * decay + (dt[..., None] * x)[..., None] * B[:, None, None, :]
    y = torch.einsum("bhpn,bn->bhp", h, C)
    return y, h


def ssd_sequential(x, dt, A, B, C, chunk_size=None, initial_state=None):
    """The plain recurrence over a sequence: the reference for `ssd_chunked` (and the decode
    path). x (b,L,H,P), dt (b,L,H), A (H,), B, C (b,L,N), initial_state (b,H,P,N) or None.
    `chunk_size` is unused (same signature as ssd_chunked). Returns (y (b,L,H,P), final_state)."""
    b, L, H, P = x.shape
    h = initial_state if initial_state is not None else x.new_zeros(b, H, P, B.size(-1))
    ys = []
    for t in range(L):
        y, h = ssm_step(h, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        ys.append(y)
    return torch.stack(ys, dim=1), h


def segsum(a: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = a[..., j+1] + ... + a[..., i] for i >= j, and -inf above the diagonal
    (exp of it is the decay from step j to step i). Summing masked copies, rather than
    differencing one cumsum, keeps it accurate for long chunks."""
    L = a.size(-1)
    a = a[..., :, None].expand(*a.shape, L)  # a[..., i, j] = a_i
    ones = torch.ones(L, L, dtype=torch.bool, device=a.device)
    sums = a.masked_fill(~ones.tril(-1), 0).cumsum(dim=-2)  # sum of a_k over j < k <= i
    return sums.masked_fill(~ones.tril(), -math.inf)


def ssd_chunked(x, dt, A, B, C, chunk_size, initial_state=None):
    """The chunked state-space-duality scan (Mamba-2, Dao & Gu 2024, Listing 1), same inputs and
    outputs as `ssd_sequential`. Lengths that are not a multiple of the chunk are padded with
    dt = 0, a step that neither decays nor writes the state, so the final state is exact."""
    b, L, H, P = x.shape
    N = B.size(-1)
    pad = (-L) % chunk_size
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, pad))
    n_chunks, Q = (L + pad) // chunk_size, chunk_size
    inplace = not torch.is_grad_enabled()  # (inference: reuse the big buffers)
    # laid out (b, c, H, Q, ...): heads before positions, so each product below is one
    # batched matmul without transposed copies. xs_s = dt_s x_s, the input written at step s.
    xs = (x * dt[..., None]).view(b, n_chunks, Q, H, P).transpose(2, 3).contiguous()
    Bc, Cc = B.view(b, n_chunks, Q, N), C.view(b, n_chunks, Q, N)
    a = (dt * A).view(b, n_chunks, Q, H).transpose(2, 3)  # (b,c,H,Q) log-decay per step
    a_cum = a.cumsum(dim=-1)

    # 1. inside each chunk: y_t = sum_{s<=t} (C_t . B_s) decay(s -> t) xs_s. The decay is the
    # difference of the chunk-local cumulative sums (as Mamba-2's own chunk-scan kernel does;
    # within one chunk they stay small, so nothing cancels badly). Causality is applied to the
    # (C . B) scores, which all heads share, not to the H times larger decays: above the
    # diagonal the differences are clamped to 0 (below it they are <= 0 already, as a <= 0),
    # since exp of -inf or of a large positive value is ~2x slower here, and inf * 0 is NaN.
    causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
    scores = (Cc @ Bc.transpose(-1, -2)).masked_fill_(~causal, 0)  # (b,c,Q,Q)
    seg = a_cum[..., :, None] - a_cum[..., None, :]
    seg = seg.clamp_(max=0) if inplace else seg.clamp(max=0)
    weights = (seg.exp_().mul_(scores[:, :, None]) if inplace
               else torch.exp(seg) * scores[:, :, None])  # (b,c,H,Q,Q)
    y = weights @ xs  # (b,c,H,Q,P)

    # 2. the state each chunk leaves at its end, starting from zero
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b,c,H,Q)
    chunk_states = (xs * decay_to_end[..., None]).transpose(-1, -2) @ Bc[:, :, None]  # (b,c,H,P,N)

    # 3. the recurrence across chunks on those states only: the state entering chunk z is the
    # carried-in state and every earlier chunk's state, each decayed to the start of z
    if initial_state is None:
        initial_state = x.new_zeros(b, H, P, N)
    states = torch.cat([initial_state[:, None], chunk_states], dim=1)  # (b,c+1,H,P,N)
    chunk_decay = torch.exp(segsum(F.pad(a_cum[..., -1].transpose(1, 2), (1, 0))))  # (b,H,c+1,c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)
    entering, final_state = states[:, :-1], states[:, -1]

    # 4. what the entering state contributes at each position: C_t decay(start -> t) state
    carried = (Cc[:, :, None] @ entering.transpose(-1, -2)) * torch.exp(a_cum)[..., None]
    y = y.add_(carried) if inplace else y + carried
    return y.transpose(2, 3).reshape(b, n_chunks * Q, H, P)[:, :L], final_state


@dataclass
class MambaState:
    conv: torch.Tensor  # (b, conv_dim, d_conv-1): the last inputs of the causal conv
    ssm: torch.Tensor  # (b, H, P, N)
    # from the last call with keep_history: the conv window and the SSM state after every
    # position, so a speculative verify can roll back to any accepted prefix
    history: tuple[torch.Tensor, torch.Tensor] | None = None

    def rollback(self, n_keep: int) -> None:
        window, states = self.history
        k = self.conv.size(-1)
        self.conv = window[..., n_keep:n_keep + k]
        self.ssm = states[:, n_keep - 1]
        self.history = None


class Mamba2(nn.Module):
    """The Mamba-2 mixer: in-proj to (z, x, B, C, dt); causal depthwise conv + SiLU over
    (x, B, C); the SSD scan with per-head scalar A and D skip; gated RMSNorm with z; out-proj."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.d_inner, self.H, self.P = cfg.d_inner, cfg.mamba_heads, cfg.mamba_head_dim
        self.N, self.chunk_size = cfg.d_state, cfg.chunk_size
        self.conv_dim = self.d_inner + 2 * self.N
        self.in_proj = nn.Linear(cfg.d_model, self.d_inner + self.conv_dim + self.H, bias=False)
        self.conv = nn.Conv1d(self.conv_dim, self.conv_dim, cfg.d_conv, groups=self.conv_dim,
                              padding=cfg.d_conv - 1)
        # Mamba-2's init: A uniform in [1, 16] (stored as log so A = -exp(A_log) stays < 0),
        # dt log-uniform in [1e-3, 1e-1] through softplus(dt_raw + dt_bias), D = 1.
        self.A_log = nn.Parameter(torch.log(torch.empty(self.H).uniform_(1, 16)))
        dt = torch.exp(torch.empty(self.H).uniform_(math.log(1e-3), math.log(1e-1)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.D = nn.Parameter(torch.ones(self.H))
        self.norm = RMSNorm(self.d_inner, cfg.norm_eps)
        self.out_proj = nn.Linear(self.d_inner, cfg.d_model, bias=False)
        self.out_proj.residual_out = True

    def new_state(self, batch: int, like: torch.Tensor) -> MambaState:
        k = self.conv.kernel_size[0] - 1
        return MambaState(conv=like.new_zeros(batch, self.conv_dim, k),
                          ssm=like.new_zeros(batch, self.H, self.P, self.N))

    def forward(self, u, state: MambaState | None = None, keep_history: bool = False):
        b, T, _ = u.shape
        z, xBC, dt = self.in_proj(u).split([self.d_inner, self.conv_dim, self.H], dim=-1)
        if state is None:  # whole sequence from a zero state
            xBC = self.conv(xBC.transpose(1, 2))[..., :T]
        else:  # continue from the cached last inputs: no padding, the window is the history
            window = torch.cat([state.conv, xBC.transpose(1, 2)], dim=-1)
            # the depthwise conv as multiply-add over sliding windows: on a decode step this is
            # ~6x cheaper than F.conv1d's call overhead
            k = self.conv.kernel_size[0]
            xBC = torch.einsum("bctk,ck->bct", window.unfold(-1, k, 1), self.conv.weight[:, 0])
            xBC = xBC + self.conv.bias[:, None]
        xBC = F.silu(xBC.transpose(1, 2))
        x, B, C = xBC.split([self.d_inner, self.N, self.N], dim=-1)
        # the scan (exponentials of summed decays, long accumulations) runs in fp32 even under
        # bf16 autocast, as Mamba's own kernels do
        f32 = torch.promote_types(x.dtype, torch.float32)
        x, B, C = x.reshape(b, T, self.H, self.P).to(f32), B.to(f32), C.to(f32)
        dt = F.softplus(dt.to(f32) + self.dt_bias)
        A = -torch.exp(self.A_log)
        with full_precision(u):
            if state is None:
                y, _ = ssd_chunked(x, dt, A, B, C, self.chunk_size)
            elif T > 1 and not keep_history:  # prefill: the chunked scan, carrying the state
                y, state.ssm = ssd_chunked(x, dt, A, B, C, self.chunk_size, state.ssm)
                state.conv = window[..., T:]
            else:  # decode step(s): the recurrence (ssm_step), keeping each position's state
                # if asked. Everything but the state update itself is computed for all T
                # tokens at once, so a speculative verify of T tokens costs 2 ops per token
                # more than one step, not 9.
                decay = torch.exp(dt * A)[..., None, None]  # (b, T, H, 1, 1)
                inject = (dt[..., None] * x)[..., None] * B[:, :, None, None, :]  # (b,T,H,P,N)
                h, hs = state.ssm, []
                for t in range(T):
                    h = h * decay[:, t] + inject[:, t]
                    hs.append(h)
                states = torch.stack(hs, dim=1) if T > 1 else h[:, None]
                y = torch.einsum("bthpn,btn->bthp", states, C)
                state.ssm, state.conv = h, window[..., T:]
                state.history = (window, states) if keep_history else None

        y = y + x * self.D[:, None]
        y = self.norm(y.reshape(b, T, self.d_inner) * F.silu(z))  # gate, then normalize
        return self.out_proj(y)


# ---- attention --------------------------------------------------------------------------------


@dataclass
class KVState:
    k: torch.Tensor  # (b, n_kv_heads, S, head_dim)
    v: torch.Tensor

    @property
    def length(self) -> int:
        return self.k.size(2)

    def truncate(self, length: int) -> None:
        self.k, self.v = self.k[:, :, :length], self.v[:, :, :length]


def apply_rope(x: torch.Tensor, start: int, theta: float) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+d/2}) by angle pos * theta^(-2i/d) (RoFormer, rotate-half form).
    x (b, heads, T, d); positions start .. start+T-1."""
    half = x.size(-1) // 2
    inv_freq = theta ** (-torch.arange(half, dtype=torch.float64, device=x.device) / half)
    pos = torch.arange(start, start + x.size(2), dtype=torch.float64, device=x.device)
    angle = pos[:, None] * inv_freq[None]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    """Causal grouped-query attention (n_kv_heads key/value heads shared by n_heads queries)."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.rope_theta = cfg.rope_theta if cfg.rope else None
        self.wq = nn.Linear(cfg.d_model, self.n_heads * self.hd, bias=False)
        self.wkv = nn.Linear(cfg.d_model, 2 * self.n_kv * self.hd, bias=False)
        self.wo = nn.Linear(self.n_heads * self.hd, cfg.d_model, bias=False)
        self.wo.residual_out = True

    def new_state(self, batch: int, like: torch.Tensor) -> KVState:
        empty = like.new_zeros(batch, self.n_kv, 0, self.hd)
        return KVState(k=empty, v=empty.clone())

    def forward(self, x, state: KVState | None = None):
        b, T, _ = x.shape
        q = self.wq(x).view(b, T, self.n_heads, self.hd).transpose(1, 2)
        k, v = self.wkv(x).view(b, T, 2 * self.n_kv, self.hd).transpose(1, 2).chunk(2, dim=1)
        past = state.length if state is not None else 0
        if self.rope_theta is not None:
            q, k = apply_rope(q, past, self.rope_theta), apply_rope(k, past, self.rope_theta)
        if state is not None:
            k = torch.cat([state.k, k], dim=2)
            v = torch.cat([state.v, v], dim=2)
            state.k, state.v = k, v
        mask, causal = None, T > 1
        if past and T > 1:  # queries sit at positions past..past+T-1: a bottom-right causal mask
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            causal = False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           enable_gqa=self.n_kv != self.n_heads)
        return self.wo(y.transpose(1, 2).reshape(b, T, self.n_heads * self.hd))


# ---- mixture of experts ---------------------------------------------------------------------


class MoE(nn.Module):
    """DeepSeek-V3 style MoE: a sigmoid router; top-k selection on score + bias, where the bias
    is a no-gradient buffer nudged toward balanced load (aux-loss-free balancing) and is used
    ONLY to select; the gates are the selected sigmoid scores normalized to sum 1. One shared
    expert sees every token. With `moe_latent` > 0 (Nemotron 3 latent MoE) the routed experts
    work in a smaller width behind one shared down/up projection, which cuts their weights and
    the bytes moved per token; routing still looks at the full-width token."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.top_k, self.n_experts = cfg.top_k, cfg.n_experts
        self.seq_aux_weight = cfg.seq_aux_weight
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.register_buffer("bias", torch.zeros(cfg.n_experts))
        self.register_buffer("load", torch.zeros(cfg.n_experts))  # tokens/expert since update
        width = cfg.moe_latent or cfg.d_model
        self.down = nn.Linear(cfg.d_model, width, bias=False) if cfg.moe_latent else None
        self.up = nn.Linear(width, cfg.d_model, bias=False) if cfg.moe_latent else None
        if self.up is not None:
            self.up.residual_out = True
        self.experts = nn.ModuleList(SwiGLU(width, cfg.d_expert) for _ in range(cfg.n_experts))
        self.shared = SwiGLU(cfg.d_model, cfg.d_expert) if cfg.shared_expert else None

    def route(self, x: torch.Tensor):
        """x (n, d) -> scores (n, E) sigmoid affinities, idx (n, k) chosen experts, gates (n, k)."""
        # routing in fp32 even under autocast: bf16 scores would tie and flip the top-k
        with full_precision(x):
            scores = torch.sigmoid(self.router(x.to(torch.promote_types(x.dtype, torch.float32))))
        idx = torch.topk(scores.detach() + self.bias, self.top_k, dim=-1).indices
        gates = scores.gather(-1, idx)
        return scores, idx, gates / gates.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, with_aux: bool = True):
        b, T, d = x.shape
        flat = x.reshape(b * T, d)
        scores, idx, gates = self.route(flat)
        h = self.down(flat) if self.down is not None else flat
        stacked = None if torch.is_grad_enabled() or b * T > 8 else self._stacked()
        if stacked is not None:
            # decoding a few tokens (a step, a speculative verify): every expert on every token
            # in two batched matmuls, with the gates zero outside the top-k. ~8 ops, where the
            # dispatch below costs ~9 per expert the tokens touch; the extra FLOPs are tiny.
            w_in, w_out = stacked
            g, u = torch.matmul(h, w_in).chunk(2, dim=-1)  # (E, n, d_expert) each
            dense = gates.new_zeros(b * T, self.n_experts).scatter_(1, idx, gates)
            out = torch.einsum("ne,enw->nw", dense, torch.matmul(F.silu(g) * u, w_out))
            counts = None
        else:
            # sparse dispatch: sort the (token, expert) pairs by expert, run each expert once
            # on its tokens, scatter-add the gated outputs back
            pair_expert = idx.flatten()
            order = torch.argsort(pair_expert, stable=True)
            counts = torch.bincount(pair_expert, minlength=self.n_experts)
            token = order // self.top_k
            gate = gates.flatten()[order, None]
            out = h.new_zeros(h.shape, dtype=gate.dtype)  # fp32 (or better) accumulation
            start = 0
            for e, n in enumerate(counts.tolist()):
                if n:
                    rows = token[start:start + n]
                    y = self.experts[e](h[rows]) * gate[start:start + n]
                    out.index_add_(0, rows, y.to(out.dtype))
                    start += n
        if self.up is not None:
            out = self.up(out)
        if self.shared is not None:
            out = out + self.shared(flat)

        aux = None
        if with_aux:
            if self.training:
                if counts is None:
                    counts = torch.bincount(idx.flatten(), minlength=self.n_experts)
                self.load += counts.to(self.load.dtype)
            aux = self.seq_aux_weight * self.sequence_balance_loss(scores.view(b, T, -1),
                                                                   idx.view(b, T, -1))
        return out.view(b, T, d), aux

    def _stacked(self):
        """The experts' weights as (E, width, 2*d_expert) and (E, d_expert, width) for the
        few-token path, rebuilt when a weight changes; None when an expert is not a plain
        linear pair (e.g. NVFP4), which then takes the dispatch path."""
        weights = self.__dict__.get("_expert_weights")
        if weights is None:  # looked up once: nn.Module attribute access is slow per step
            linears = [lin for e in self.experts for lin in (e.w_in, e.w_out)]
            if any(type(lin) is not nn.Linear for lin in linears):
                return None
            weights = self._expert_weights = [lin.weight for lin in linears]
        return derived(self, "stacked", tuple((w.data_ptr(), w._version) for w in weights),
                       lambda: (torch.stack([w.T for w in weights[0::2]]),
                                torch.stack([w.T for w in weights[1::2]])))

    def sequence_balance_loss(self, scores, idx):
        """DeepSeek-V3 eqs. 17-20, per sequence: sum_i f_i P_i, with f_i the fraction of the
        sequence's picks that went to expert i (scaled so uniform = 1) and P_i the mean of its
        normalized affinity. Only P carries gradient. A small weight: the bias does the balancing,
        this just keeps single sequences from collapsing onto a few experts."""
        b, T, E = scores.shape
        picks = torch.zeros(b, E, dtype=scores.dtype, device=scores.device)
        chosen = idx.reshape(b, -1)
        picks.scatter_add_(1, chosen, torch.ones_like(chosen, dtype=scores.dtype))
        f = picks * E / (self.top_k * T)
        P = (scores / scores.sum(dim=-1, keepdim=True)).mean(dim=1)
        return (f * P).sum(dim=-1).mean()

    @torch.no_grad()
    def update_bias(self, rate: float) -> None:
        """bias_i += rate * sign(mean load - load_i): under-loaded experts get picked more."""
        if self.load.sum() > 0:
            self.bias += rate * torch.sign(self.load.mean() - self.load)
        self.load.zero_()


def moe_dense_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, combined with the gates masked to the selected experts. The
    reference the sparse dispatch in MoE.forward must equal."""
    flat = x.reshape(-1, x.size(-1))
    _, idx, gates = moe.route(flat)
    dense_gates = torch.zeros(flat.size(0), moe.n_experts, dtype=x.dtype, device=x.device)
    dense_gates.scatter_(1, idx, gates)
    h = moe.down(flat) if moe.down is not None else flat
    out = sum(dense_gates[:, e, None] * expert(h) for e, expert in enumerate(moe.experts))
    if moe.up is not None:
        out = moe.up(out)
    if moe.shared is not None:
        out = out + moe.shared(flat)
    return out.view_as(x)


# ---- blocks ---------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm residual block: x + f(norm(x)), f chosen by the pattern char."""

    def __init__(self, cfg: HybridConfig, kind: str):
        super().__init__()
        self.kind = kind
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        if kind == "M":
            self.mixer = Mamba2(cfg)
        elif kind == "*":
            self.mixer = Attention(cfg)
        elif kind == "E":
            self.mixer = MoE(cfg)
        else:
            self.mixer = SwiGLU(cfg.d_model, cfg.d_ff)

    def new_state(self, batch: int, like: torch.Tensor):
        return self.mixer.new_state(batch, like) if self.kind in "M*" else None

    def forward(self, x, state=None, cached: bool = False, keep_history: bool = False):
        """Returns (x, aux loss or None). `cached` = decoding: states are used, no aux loss."""
        h = self.norm(x)
        aux = None
        if self.kind == "M":
            h = self.mixer(h, state, keep_history)
        elif self.kind == "*":
            h = self.mixer(h, state)
        elif self.kind == "E":
            h, aux = self.mixer(h, with_aux=not cached)
        else:
            h = self.mixer(h)
        return x + h, aux


class MTPModule(nn.Module):
    """DeepSeek-V3 multi-token prediction, depth k: h'_t = W [RMSNorm(h^{k-1}_t); RMSNorm(emb
    of token t+k)], then one attention block and one dense FF block; the model's final norm and
    head (shared) turn h^k_t into a prediction of token t+1+k. Attention (not Mamba) keeps the
    cache a plain KV cache that is easy to truncate while drafting."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.norm_h = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.norm_emb = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.proj = nn.Linear(2 * cfg.d_model, cfg.d_model, bias=False)
        self.attn = Block(cfg, "*")
        self.ff = Block(cfg, "-")

    def forward(self, h, emb, state: KVState | None = None):
        x = self.proj(torch.cat([self.norm_h(h), self.norm_emb(emb)], dim=-1))
        if x.dtype != h.dtype:  # (bf16 under autocast)
            x = x.to(h.dtype)
        x, _ = self.attn(x, state, cached=state is not None)
        x, _ = self.ff(x)
        return x


class OneDNNInt8:
    """x @ q.T for a fixed int8 matrix q (V, d) and a few rows x of integers in [-127, 127],
    summed exactly, through oneDNN's quantized linear (the op torch.compile's x86 int8
    lowering calls) on q prepacked once: x goes in as uint8 with zero point 128, the int32
    sums come out as fp32. Only for d <= 518, where even the raw uint8 sums (before the zero
    point is taken off) stay below 2^24 and so are exact in fp32 whatever order oneDNN uses."""

    def __init__(self, q: torch.Tensor):
        self.packed = torch.ops.onednn.qlinear_prepack(q, [4, q.size(1)])
        self.w_scale = torch.ones(q.size(0))
        self.w_zero = torch.zeros(q.size(0), dtype=torch.long)

    def __call__(self, xq: torch.Tensor) -> torch.Tensor:
        return torch.ops.onednn.qlinear_pointwise(
            (xq + 128).to(torch.uint8), 1.0, 128, self.packed, self.w_scale, self.w_zero, None,
            1.0, 0, torch.float32, "none", [], "")

    @classmethod
    def exact_or_none(cls, q: torch.Tensor) -> OneDNNInt8 | None:
        """An instance for q if it reproduces torch._int_mm exactly, else None: without VNNI
        a CPU adds u8 x s8 products pairwise in int16, which saturates. Checked on the worst
        case (all 127 against +-127 rows) and on q itself."""
        d = q.size(1)
        if 255 * 127 * d >= 2**24 or not hasattr(torch.ops, "onednn"):
            return None
        try:
            probe = torch.cat([torch.full((1, d), 127.0), torch.full((1, d), -127.0),
                               torch.randint(-127, 128, (3, d), generator=torch.Generator()
                                             .manual_seed(0)).float()])
            for mat in (torch.full((64, d), 127, dtype=torch.int8), q):
                mm = cls(mat)
                if not torch.equal(mm(probe), torch._int_mm(probe.to(torch.int8), mat.T).float()):
                    return None
            return mm  # the one made for q
        except (AttributeError, RuntimeError, NotImplementedError):
            return None


# ---- the loss -------------------------------------------------------------------------------


CE_CHUNK_ELEMENTS = 2**22  # logits per softmax chunk (16 MB in fp32: stays in the L3)
CE_GROUP_ELEMENTS = 2**24  # gradient rows (~340) kept per group for the two gradient matmuls


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (x @ weight^T) against targets, never holding the (N, V) logits:
    the softmax runs on L3-sized chunks of rows, and once a chunk's logits are known so is its
    gradient (softmax - onehot). Gradient rows are gathered per group of chunks, so the two
    gradient matmuls run on a few hundred rows at a time (a handful of rows per matmul is slow,
    and every group adds a (V, d) update). Both gradients are saved; backward only scales them.
    Same FLOPs as the plain loss, a fraction of the memory traffic."""

    @staticmethod
    def forward(ctx, x, weight, targets, compute_dtype, need_grad):
        acc = torch.promote_types(x.dtype, torch.float32)  # softmax and sums: fp32 or better
        xc, wc = x.to(compute_dtype), weight.to(compute_dtype)
        wt = wc.T.contiguous()  # (d, V): the logits matmul runs ~1.4x faster on this layout
        N, V = x.size(0), weight.size(0)
        valid = targets != -100
        safe = targets.clamp_min(0)[:, None]
        total = torch.zeros((), dtype=acc, device=x.device)
        grad_x = torch.empty_like(x) if need_grad else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=x.device) if need_grad else None
        chunk = max(1, CE_CHUNK_ELEMENTS // V)
        group = max(chunk, CE_GROUP_ELEMENTS // V // chunk * chunk)
        for g0 in range(0, N, group):
            g1 = min(g0 + group, N)
            grads = x.new_empty(g1 - g0, V, dtype=compute_dtype) if need_grad else None
            for i in range(g0, g1, chunk):
                j = min(i + chunk, g1)
                logits = (xc[i:j] @ wt).to(acc)
                picked = logits.gather(1, safe[i:j])[:, 0]
                top = logits.amax(dim=-1, keepdim=True)
                p = logits.sub_(top).exp_()  # in place: one pass serves loss and gradient
                total_p = p.sum(dim=-1, keepdim=True)
                v = valid[i:j].to(acc)
                total += ((top[:, 0] + total_p[:, 0].log() - picked) * v).sum()
                if need_grad:
                    g = p.mul_(v[:, None] / total_p)  # softmax on counted rows, zero elsewhere
                    g.scatter_add_(1, safe[i:j], -v[:, None])  # minus the one-hot target
                    grads[i - g0:j - g0] = g
            if need_grad:
                grad_x[g0:g1] = grads @ wc
                grad_w += (grads.T @ xc[g0:g1]).to(acc)
        scale = 1.0 / valid.sum().clamp_min(1).to(acc)
        if need_grad:
            ctx.save_for_backward(grad_x * scale.to(x.dtype), (grad_w * scale).to(weight.dtype))
        return total * scale

    @staticmethod
    def backward(ctx, grad_out):
        grad_x, grad_w = ctx.saved_tensors
        return (grad_x * grad_out.to(grad_x.dtype), grad_w * grad_out.to(grad_w.dtype),
                None, None, None)


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor,
                         targets: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy(x @ weight.T, targets, ignore_index=-100) (mean over counted targets; 0
    if none), computed chunk-wise. x (..., d), targets (...). Under autocast the matmuls run in
    the autocast dtype (bf16 on this CPU is ~3x faster than fp32), the softmax in fp32."""
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    # decided here: inside Function.forward grad mode is always off
    need_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    with torch.autocast(x.device.type, enabled=False):
        return _LinearCrossEntropy.apply(x.reshape(-1, x.size(-1)), weight, targets.reshape(-1),
                                         dtype, need_grad)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass
class HybridOutput:
    """What forward returns. `logits` and `mtp_logits` are computed on first access (with
    gradient): the loss never needs them (see linear_cross_entropy), and on a CPU the (B, T, V)
    output layer is most of a training step."""

    hidden: torch.Tensor  # (B, T, d): the last layer's residual stream, before the final norm
    mtp_hidden: list[torch.Tensor]  # per MTP depth: its output h^k, before the final norm
    head: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)  # final norm + output layer
    loss: torch.Tensor | None = None  # ce_loss + mtp_weight * mtp_loss + aux_loss
    ce_loss: torch.Tensor | None = None
    mtp_loss: torch.Tensor | None = None  # mean over depths of the MTP cross-entropies
    aux_loss: torch.Tensor | None = None  # sum over MoE layers of the weighted balance losses

    @cached_property
    def logits(self) -> torch.Tensor:
        """(B, T, V): position t predicts token t+1."""
        return self.head(self.hidden)

    @cached_property
    def mtp_logits(self) -> list[torch.Tensor]:
        """Per depth k = 1..D, (B, T, V): position t predicts token t+1+k. The last k positions
        have no input token t+k (they read pad id 0) and carry no loss."""
        return [self.head(h) for h in self.mtp_hidden]


@dataclass
class HybridCache:
    layers: list  # per layer: MambaState, KVState, or None (feed-forward layers)
    mtp: list[KVState]  # per MTP depth: the KV cache of its attention block
    seen: int = 0  # tokens the main model has processed
    last_call: int = 0  # tokens in the last forward_cached call (for rollback)

    def rollback(self, n_keep: int) -> None:
        """Keep only the first n_keep tokens of the last forward_cached(keep_history=True) call."""
        drop = self.last_call - n_keep
        for state in self.layers:
            if isinstance(state, MambaState):
                state.rollback(n_keep)
            elif isinstance(state, KVState):
                state.truncate(state.length - drop)
        self.seen -= drop
        self.last_call = n_keep


class HybridLM(nn.Module):
    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, kind) for kind in cfg.pattern)
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.mtp = nn.ModuleList(MTPModule(cfg) for _ in range(cfg.mtp_depths))
        # how often each token was a training target (the trainer counts); speculative
        # decoding drafts over the most frequent ones (see draft_tokens)
        self.register_buffer("token_counts", torch.zeros(cfg.vocab_size, dtype=torch.int64))
        self.apply(self._init_weights)
        if cfg.nvfp4:
            from synth.model.nvfp4 import convert_to_nvfp4

            convert_to_nvfp4(self, keep=self._keep_high_precision)

    def _init_weights(self, module: nn.Module) -> None:
        # std 0.02 everywhere; with the unit-RMS final norm the initial logits have std
        # 0.02*sqrt(d_model) (~0.2), so the initial loss is ~ln(vocab). Projections that write
        # into the residual stream are scaled down by sqrt(2 * layers) (GPT-2), so the stream's
        # variance does not grow with depth.
        std = self.cfg.init_std
        if isinstance(module, nn.Linear):
            if getattr(module, "residual_out", False):
                std = std / math.sqrt(2 * (len(self.cfg.pattern) + 2 * self.cfg.mtp_depths))
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)

    def _keep_high_precision(self, name: str, module: nn.Module) -> bool:
        """NVFP4 keeps the output head/embedding, the routers (a flipped top-k changes which
        weights run at all), the MTP modules and the last `nvfp4_keep_last` layers in high
        precision, as in NVIDIA's NVFP4 pretraining recipe."""
        if name == "head" or name.startswith("mtp.") or "router" in name:
            return True
        if name.startswith("layers."):
            layer = int(name.split(".")[1])
            return layer >= len(self.cfg.pattern) - self.cfg.nvfp4_keep_last
        return True

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())  # a tied weight counts once
        if non_embedding:
            n -= self.embed.weight.numel()
            if not self.cfg.tie_embeddings:
                n -= self.head.weight.numel()
        return n

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(hidden))

    def _head_as_now(self, like: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """self.logits under the autocast state of this moment, for the lazy HybridOutput.logits
        (which a caller may read after leaving the autocast block forward ran in)."""
        device = like.device.type
        enabled, dtype = torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)

        def head(hidden: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device, dtype=dtype, enabled=enabled):
                return self.logits(hidden)

        return head

    def decode_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """logits(hidden) for the few rows of a decode step: same values, faster. On this CPU
        MKL's fp32 matmul of a handful of rows against the (V, d) head costs ~3.3 ms per row;
        one row against a contiguous (d, V) copy ~0.8-1.3 ms, and 2-8 rows against the head
        viewed as 64-row blocks (a batched matmul) ~1.5-2 ms in all. The copy is refreshed
        whenever the weight changes (an optimizer step bumps its version)."""
        x = self.norm(hidden)
        w = self.head.weight
        rows = x.reshape(-1, x.size(-1))
        if type(self.head) is not nn.Linear or self.head.bias is not None:
            return self.head(x)  # a converted (e.g. quantized) head computes its own way
        if rows.size(0) == 1:
            out = rows @ derived(self, "head_t", (w.data_ptr(), w._version, w.dtype, w.device),
                                 lambda: w.detach().T.contiguous())
        elif rows.size(0) <= 8 and w.size(0) % 64 == 0:
            out = torch.matmul(w.view(-1, 64, w.size(1)), rows.T).reshape(w.size(0), -1)
            out = out.T.contiguous()
        else:
            out = rows @ w.T
        return out.reshape(*x.shape[:-1], w.size(0))

    @torch.no_grad()
    def count_tokens(self, targets: torch.Tensor) -> None:
        """Add a batch's targets (ignore index -100 skipped) to token_counts."""
        t = targets[targets >= 0].reshape(-1)
        self.token_counts += torch.bincount(t, minlength=self.cfg.vocab_size).to(self.token_counts)

    # Greedy decoding needs only the argmax of the logits, not the logits. On this CPU the
    # fp32 head costs ~0.8 ms per row (linear in rows), while int8 x int8 -> int32
    # (torch._int_mm; the head and each row of activations quantized to int8) costs ~0.1 ms
    # for one row, and oneDNN's int8 linear ~0.2-0.3 ms for two to five (_int_mm: 0.3-0.4).
    # So the argmax is found in two passes that give
    # the fp32 answer: int8 logits, with an error bound that holds for every row, keep the few
    # tokens that could still be the maximum; their exact fp32 logits pick it.
    FAST_ARGMAX_MIN_VOCAB = 4096  # below this the plain fp32 head is cheap enough
    ARGMAX_BLOCK = 64  # tokens per block when looking for the argmax candidates

    def _int8_head(self):
        """(q (V, d) int8, scale, max_i ||W_i - scale q_i||, max_i ||scale q_i||) for the
        current head weight, rebuilt when it changes (an optimizer step bumps its version).
        One scale for the whole head: then the int32 products rank the tokens as the
        approximate logits do, and the error bound (which takes the worst row anyway) is
        about what per-row scales give."""
        w = self.head.weight

        def build():
            wf = w.detach().float()
            scale = wf.abs().max().clamp_min(1e-30).item() / 127
            q = torch.round(wf / scale).clamp_(-127, 127)
            used = q * scale
            return (q.to(torch.int8), scale, (wf - used).norm(dim=1).max().item(),
                    used.norm(dim=1).max().item())

        return derived(self, "int8_head", (w.data_ptr(), w._version, w.device), build)

    def _int8_head_onednn(self):
        """The int8 head prepacked for oneDNN's u8 x s8 matmul (None where that is missing or
        not exact): for several rows (a speculative verify) ~1.5x faster than torch._int_mm
        here (4 rows: ~0.25 vs ~0.37 ms), whose single-row path stays the faster for one."""
        w = self.head.weight
        return derived(self, "int8_head_onednn", (w.data_ptr(), w._version, w.device),
                       lambda: OneDNNInt8.exact_or_none(self._int8_head()[0]))

    def _int8_scores(self, rows: torch.Tensor):
        """For normalized rows (n, d): integer scores (n, V) (int32, or fp32 holding integers
        below 2^24), the factor per row (n,) that turns them into approximate logits, and a
        bound per row on |exact - approximate| for every token. The products are summed
        exactly; x = s_x x' + e_x and W_i = s q_i + e_i give
        exact_i - approx_i = x . e_i + e_x . (s q_i),  so by Cauchy-Schwarz
        |error| <= ||x|| max||e_i|| + ||e_x|| max||s q_i||."""
        q, scale, err, wq = self._int8_head()
        rows = rows.float()
        s_x = rows.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30) / 127
        xq = torch.round(rows / s_x)
        multi = self._int8_head_onednn() if rows.size(0) > 1 else None
        if multi is not None:
            acc = multi(xq)
        else:
            acc = torch._int_mm(xq.to(torch.int8), q.T)  # exact: |acc| <= d * 127^2 < 2^31
        bound = rows.norm(dim=-1) * err + (rows - xq * s_x).norm(dim=-1) * wq
        # 1 % and 1e-5 on top: the fp32 arithmetic of the bound and of the exact pass rounds
        return acc, s_x[:, 0] * scale, bound * 1.01 + 1e-5

    def _fast_argmax_ok(self, rows: torch.Tensor) -> bool:
        return (type(self.head) is nn.Linear and self.head.bias is None
                and rows.dtype == torch.float32 and self.head.weight.dtype == torch.float32
                and rows.device.type == "cpu"
                and self.cfg.vocab_size >= self.FAST_ARGMAX_MIN_VOCAB
                and hasattr(torch, "_int_mm"))

    def greedy_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """argmax over the vocabulary of logits(hidden), shape hidden.shape[:-1]: the token
        the fp32 head ranks first (up to logits tied within fp32 rounding)."""
        x = self.norm(hidden)
        rows = x.reshape(-1, x.size(-1))
        if not self._fast_argmax_ok(rows):
            return self.decode_logits(hidden).argmax(-1)
        try:
            acc, factor, bound = self._int8_scores(rows)
        except (RuntimeError, NotImplementedError):  # no int8 matmul in this build
            return self.decode_logits(hidden).argmax(-1)
        # the true maximum is >= top - bound and a token's true logit <= its approx + bound:
        # only tokens whose score is within 2 bounds of the top can be the argmax. They are
        # found block by block: the maximum of each ARGMAX_BLOCK consecutive scores (one cheap
        # reduction; topk or a full comparison costs ~10-20x more on a row of 49k), then the
        # exact fp32 logits of every token in the blocks that can hold a candidate, usually
        # one per row. (Extra tokens in those blocks are harmless: their logits are exact too.)
        # (A vocabulary that is no multiple of the block size takes blocks of one token.)
        window = 2 * bound / factor
        n, V = acc.shape
        B = self.ARGMAX_BLOCK if V % self.ARGMAX_BLOCK == 0 else 1
        blocks = acc.view(n, V // B, B).amax(-1).float()  # exact: |acc| < 2^24
        r, c = (blocks >= (blocks.amax(-1) - window)[:, None]).nonzero(as_tuple=True)
        exact = torch.bmm(self.head.weight.view(V // B, B, -1)[c], rows[r, :, None])[..., 0]
        best, at = exact.max(-1)  # per block: its best token (the first of equals)
        token = c * B + at
        if r.numel() == n:  # one block per row (nonzero lists them row by row)
            return token.reshape(x.shape[:-1])
        # several blocks for some row: its best logit, and the lowest token reaching it
        top = best.new_full((n,), float("-inf")).scatter_reduce(0, r, best, "amax")
        first = token.new_full((n,), V).scatter_reduce(
            0, r, torch.where(best == top[r], token, V), "amin")
        return first.reshape(x.shape[:-1])

    DRAFT_VOCAB = 8192  # drafts come from the most frequent training targets (FR-Spec)

    def _draft_vocab(self):
        """(ids, (d, n) head rows scaled by the final norm's weight) of the DRAFT_VOCAB most
        frequent training targets, or None when nothing was counted. FR-Spec (Zhao et al.
        2025) observed that a large vocabulary makes the drafter's output layer the cost of
        drafting, and that restricting it to the frequent tokens keeps nearly all accepted
        drafts; here 8k of 49k rows, ~0.1 ms."""
        w, g, counts = self.head.weight, self.norm.weight, self.token_counts

        def build():
            n = min(self.DRAFT_VOCAB, int((counts > 0).sum()))
            if n == 0:
                return None
            ids = torch.topk(counts, n).indices.sort().values
            return ids, (w.detach()[ids] * g.detach()).T.contiguous()

        key = (w.data_ptr(), w._version, g.data_ptr(), g._version, counts._version, w.dtype,
               self.DRAFT_VOCAB)
        return derived(self, "draft_vocab", key, build)

    def draft_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """The drafter's guesses for hidden (..., d): argmax over the frequent-token sub-vocabulary
        when the model has token counts, else over the int8 head. Only has to be right often;
        the verify pass decides with exact logits. The final norm's weight is folded into the
        sub-vocabulary's rows and its 1/rms, the same positive factor for every logit of a row,
        cannot change the argmax: so no norm here."""
        vocab = self._draft_vocab()
        if vocab is None:
            return self.draft_logits(hidden).argmax(-1).reshape(hidden.shape[:-1])
        ids, w_t = vocab
        if hidden.dtype != w_t.dtype:
            hidden = hidden.to(w_t.dtype)
        return ids[(hidden @ w_t).argmax(-1)]

    def draft_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Approximate logits for drafting only, from the int8 head (~0.1 ms a row instead of
        ~0.8). A draft only has to be right often enough to be accepted; the verify pass
        decides with exact logits."""
        x = self.norm(hidden)
        rows = x.reshape(-1, x.size(-1))
        if self._fast_argmax_ok(rows):
            try:
                acc, factor, _ = self._int8_scores(rows)
                return (acc.float() * factor[:, None]).reshape(*x.shape[:-1], -1)
            except (RuntimeError, NotImplementedError):
                pass
        return self.decode_logits(hidden)

    def forward(self, input_ids, targets=None, loss_mask=None) -> HybridOutput:
        x = self.embed(input_ids)
        aux_losses = []
        for layer in self.layers:
            x, aux = layer(x)
            if aux is not None:
                aux_losses.append(aux)
        hidden = x

        # MTP depth k at position t reads h^{k-1}_t and token t+k (DeepSeek-V3 sec. 2.2); the
        # last k positions have no such token in the input and read a pad id instead
        mtp_hidden, h = [], hidden
        for k, module in enumerate(self.mtp, start=1):
            ahead = F.pad(input_ids[:, k:], (0, k), value=0)
            h = module(h, self.embed(ahead))
            mtp_hidden.append(h)
        out = HybridOutput(hidden=hidden, mtp_hidden=mtp_hidden, head=self._head_as_now(hidden))
        if targets is None:
            return out

        if loss_mask is not None:
            targets = targets.masked_fill(loss_mask == 0, -100)
        weight = self.head.weight
        out.ce_loss = linear_cross_entropy(self.norm(hidden), weight, targets)
        # targets[t] is token t+1, so depth k's target (token t+1+k) is targets[t+k]
        mtp_ce = [linear_cross_entropy(self.norm(h), weight,
                                       F.pad(targets[:, k:], (0, k), value=-100))
                  for k, h in enumerate(mtp_hidden, start=1)]
        zero = out.ce_loss.new_zeros(())
        out.mtp_loss = torch.stack(mtp_ce).mean() if mtp_ce else zero
        out.aux_loss = torch.stack(aux_losses).sum().to(zero.dtype) if aux_losses else zero
        out.loss = out.ce_loss + self.cfg.mtp_weight * out.mtp_loss + out.aux_loss
        return out

    @torch.no_grad()
    def update_router_bias(self) -> None:
        """Aux-loss-free balancing step (DeepSeek-V3): call after each optimizer step."""
        for module in self.modules():
            if isinstance(module, MoE):
                module.update_bias(self.cfg.bias_update_rate)

    # ---- decoding --------------------------------------------------------------------------

    def new_cache(self, batch_size: int) -> HybridCache:
        like = self.embed.weight
        return HybridCache(
            layers=[layer.new_state(batch_size, like) for layer in self.layers],
            mtp=[m.attn.new_state(batch_size, like) for m in self.mtp],
        )

    def _hidden_cached(self, input_ids, cache: HybridCache, keep_history: bool = False):
        x = self.embed(input_ids)
        for layer, state in zip(self.layers, cache.layers):
            x, _ = layer(x, state, cached=True, keep_history=keep_history)
        cache.seen += input_ids.size(1)
        cache.last_call = input_ids.size(1)
        return x

    def forward_cached(self, input_ids, cache: HybridCache, keep_history: bool = False):
        """Run new tokens through the main model, continuing from `cache` and updating it.
        T > 1 is a prefill (chunked scan), T = 1 a decode step. keep_history=True keeps every
        position's Mamba state so `cache.rollback(n)` can return to any prefix of this call.
        Returns the main logits (B, T, V)."""
        return self.decode_logits(self._hidden_cached(input_ids, cache, keep_history))

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, eos_id: int | None = None,
                 temperature: float = 0.0, top_p: float = 1.0, generator=None,
                 speculative: bool = False, max_drafts: int | None = None) -> tuple[list[int], dict]:
        """Continue one prompt. Returns (new token ids, stats: forward_calls (main model),
        mtp_calls, drafted, accepted). temperature 0 is greedy. speculative=True (greedy only)
        drafts up to `max_drafts` tokens per round (default: one per MTP depth) with the MTP
        modules and verifies them with one main-model call; its output equals plain greedy
        decoding (barring two logits tied within rounding error: the verify pass batches rows,
        which can change the last bits).
        Runs on one CPU thread (restored after): a decode step is ~200 small ops, where a second
        thread only adds synchronization (measured: ~1.5x slower on an idle 2-core machine,
        10x slower on a busy one)."""
        if not prompt_ids:
            raise SynthError("generate needs a non-empty prompt")
        if speculative and (temperature > 0 or not self.mtp):
            raise SynthError("speculative decoding needs temperature 0 and mtp_depths >= 1")
        if max_drafts is None:
            max_drafts = len(self.mtp)
        if speculative and max_drafts < 1:
            raise SynthError(f"max_drafts must be >= 1 (got {max_drafts})")
        was_training, threads = self.training, torch.get_num_threads()
        self.eval()
        torch.set_num_threads(1)
        try:
            if speculative:
                return self._generate_speculative(prompt_ids, max_new_tokens, eos_id, max_drafts)
            return self._generate_plain(prompt_ids, max_new_tokens, eos_id, temperature, top_p,
                                        generator)
        finally:
            self.train(was_training)
            torch.set_num_threads(threads)

    def _tensor(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], dtype=torch.long, device=self.embed.weight.device)

    def _generate_plain(self, prompt_ids, max_new_tokens, eos_id, temperature, top_p, generator):
        stats = {"forward_calls": 0, "mtp_calls": 0, "drafted": 0, "accepted": 0}
        new: list[int] = []
        if max_new_tokens <= 0:
            return new, stats
        cache = self.new_cache(1)
        hidden = self._hidden_cached(self._tensor(prompt_ids), cache)[:, -1]
        stats["forward_calls"] += 1
        while True:
            if temperature <= 0:  # greedy: the argmax without the full fp32 logits
                token = int(self.greedy_tokens(hidden))
            else:
                token = sample(self.decode_logits(hidden)[0], temperature, top_p, generator)
            new.append(token)
            if token == eos_id or len(new) >= max_new_tokens:
                return new, stats
            hidden = self._hidden_cached(self._tensor([token]), cache)[:, -1]
            stats["forward_calls"] += 1

    def _generate_speculative(self, prompt_ids, max_new_tokens, eos_id, max_drafts):
        """Self-speculative greedy decoding with the MTP modules as drafter.

        Invariant at the top of a round: the main model has processed tokens 0..m-1 and token
        m is its (accepted) greedy prediction. One round with n drafts:
          1. draft: MTP depth k at position m-1 reads h^{k-1}_{m-1} and token m-1+k (token m is
             real; later ones are earlier drafts) and drafts token m+k, for k = 1..min(n, D).
             Drafts beyond the D depths chain the last module on itself (as vLLM does for
             DeepSeek's single MTP layer): at the next position it reads its own previous
             output in place of the main model's hidden, and the previous draft;
          2. verify: ONE main forward over [token m, drafts] gives the main model's greedy token
             at each of those positions; accept the longest prefix of drafts that matches,
             plus the main model's own next token;
          3. roll the main cache back to the last accepted position (Mamba states from the
             per-position history, KV caches truncated).
        The MTP caches only ever keep positions whose inputs are real tokens: depth k at
        position s reads token s+k, real while s+k <= m. Positions past that (and the chained
        ones) are dropped after the round and recomputed in the next, so the drafter stays
        exactly the training-time MTP computation.
        n adapts like transformers' "heuristic" assistant schedule: +2 after a round whose
        drafts were all accepted, -1 after a rejection, within 1..max_drafts."""
        D = len(self.mtp)
        stats = {"forward_calls": 0, "mtp_calls": 0, "drafted": 0, "accepted": 0}
        new: list[int] = []
        if max_new_tokens <= 0:
            return new, stats
        cache = self.new_cache(1)
        hidden = self._hidden_cached(self._tensor(prompt_ids), cache)
        stats["forward_calls"] += 1
        tokens = list(prompt_ids) + [int(self.greedy_tokens(hidden[:, -1]))]
        new.append(tokens[-1])
        # real[j] = (p, rows): h^j (h^0 = the main model's hidden) at positions p, p+1, ...,
        # computed from real tokens only, that depth j+1 has not consumed (cached) yet
        real = [(0, hidden)] + [(0, hidden[:, :0]) for _ in range(D - 1)]
        n_drafts = min(D, max_drafts)
        modules = list(self.mtp)  # (slicing an nn.ModuleList builds a new one every round)

        while new[-1] != eos_id and len(new) < max_new_tokens:
            m = len(tokens) - 1
            drafts: list[int] = []
            fresh = None  # (first position, rows) of the previous depth's outputs this round
            depths = min(D, n_drafts)
            for k, module in enumerate(modules[:depths], start=1):
                kv = cache.mtp[k - 1]
                start = kv.length  # depth k has positions 0..start-1 cached
                first, rows = real[k - 1]
                h_in = rows[:, start - first:]
                have = first + rows.size(1)
                if have < m:  # the rest are this round's draft-dependent outputs of depth k-1
                    h_in = torch.cat([h_in, fresh[1][:, have - fresh[0]:]], dim=1)
                # token s+k for s in start..m-1: real up to m, then this round's drafts
                ahead = [tokens[i] if i <= m else drafts[i - m - 1]
                         for i in range(start + k, m + k)]
                h_out = module(h_in, self.embed(self._tensor(ahead)), kv)
                stats["mtp_calls"] += 1
                drafts.append(int(self.draft_tokens(h_out[:, -1])))
                real_end = max(start, m - k + 1)  # positions s <= m-k read real tokens
                real[k - 1] = (real_end, rows[:, real_end - first:])  # consumed up to real_end
                if k < D:
                    f, r = real[k]
                    real[k] = (f, torch.cat([r, h_out[:, :real_end - start]], dim=1))
                fresh = (start, h_out)
                if k < depths:
                    kv.truncate(real_end)
            # chain the last module used past the depths; its cache keeps the drafted
            # positions until the round ends
            h_last = h_out[:, -1:]
            while len(drafts) < n_drafts:
                h_last = module(h_last, self.embed(self._tensor(drafts[-1:])), kv)
                stats["mtp_calls"] += 1
                drafts.append(int(self.draft_tokens(h_last[:, -1])))
            kv.truncate(real_end)

            hidden = self._hidden_cached(self._tensor([tokens[m]] + drafts), cache,
                                         keep_history=True)
            stats["forward_calls"] += 1
            greedy = self.greedy_tokens(hidden)[0].tolist()
            n_ok = 0
            while n_ok < len(drafts) and drafts[n_ok] == greedy[n_ok]:
                n_ok += 1
            stats["drafted"] += len(drafts)
            stats["accepted"] += n_ok
            n_drafts = min(max_drafts, n_drafts + 2) if n_ok == len(drafts) else max(1, n_drafts - 1)
            cache.rollback(n_ok + 1)
            f, r = real[0]
            real[0] = (f, torch.cat([r, hidden[:, :n_ok + 1]], dim=1))
            for token in drafts[:n_ok] + [greedy[n_ok]]:
                tokens.append(token)
                new.append(token)
                if token == eos_id or len(new) >= max_new_tokens:
                    break
        return new, stats


def sample(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> int:
    """One token from (V,) logits: argmax at temperature 0, else softmax(logits / temperature)
    restricted to the smallest set of tokens whose probability reaches top_p (nucleus)."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        before = sorted_p.cumsum(0) - sorted_p  # mass of the strictly more likely tokens
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        sorted_p[0] = sorted_p[0].clamp_min(1e-300)  # the top token always stays
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=generator))
