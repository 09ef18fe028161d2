"""NVFP4 4-bit training by fake quantization, in pure PyTorch.

Values are quantized to NVFP4 and immediately dequantized back to float, so the GEMMs run on
CPU in fp32 while reproducing the numbers a Blackwell NVFP4 GEMM would see. The recipe follows
NVIDIA, "Pretraining Large Language Models with NVFP4" (arXiv 2509.25149):

* NVFP4 format: E2M1 elements (magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}; OCP Microscaling
  Formats (MX) v1.0 spec, FP4 E2M1), one E4M3 scale per 16 elements (OCP MX / OCP FP8 E4M3:
  max 448, no inf, subnormals down to 2**-9), and one FP32 per-tensor scale that maps the
  tensor amax onto 6 * 448 so every block scale fits E4M3.
* 1x16 blocks along the dot-product dimension for activations and gradients; 16x16 2D blocks
  for weights, so W and W^T quantize identically and the backward pass reuses the forward's
  quantized weight.
* Stochastic rounding (unbiased) for gradients; round-to-nearest-even for everything else.
* 16x16 random Hadamard transforms on both inputs of the weight-gradient GEMM only, along the
  token (reduction) dimension, to spread block outliers.
* Selective high-precision layers: `convert_to_nvfp4` takes a `keep` predicate.

What is covered: the numerics of quantization (scales, rounding, saturation, underflow) and the
training recipe above. What is not covered: speed or memory (nothing is packed into 4 bits),
the exact accumulation order of the tensor cores (GEMMs here accumulate in fp32 on dequantized
values), and Blackwell's fused kernels. Fake quantization costs ~13 ms per million elements on
one CPU core (a 1024^3 fp32 GEMM: ~30 ms); NVFP4Linear fwd+bwd is 2-3x slower than nn.Linear.

Deliberate differences from the paper, each documented where it lives: the FP32 tensor scale
is rounded up to 18 significant bits so dequantized values are exact (`_tensor_scale`); NaN and
inf pass through quantization instead of poisoning the amax (`nvfp4_quantize`); randomness
comes from a per-layer CPU torch.Generator (`NVFP4Linear`), so this runs on CPU only.

Public API: `E2M1_GRID`, `quantize_e4m3`, `nvfp4_quantize`, `hadamard`,
`random_hadamard_transform`, `NVFP4Linear`, `convert_to_nvfp4`.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "E2M1_GRID", "E2M1_MAX", "E4M3_MAX", "NVFP4Linear", "convert_to_nvfp4", "hadamard",
    "nvfp4_quantize", "quantize_e4m3", "random_hadamard_transform",
]

E2M1_GRID = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])  # FP4 magnitudes (OCP MX)
E2M1_MAX = 6.0
E4M3_MAX = 448.0  # OCP FP8 E4M3 ("fn": no inf, one NaN pattern), largest finite value
BLOCK = 16  # NVFP4 block length; also the RHT size the paper uses
_E2M1_BITS = 2  # significant bits of an E2M1 value (1.5 = 1.1b)
_E4M3_BITS = 4  # significant bits of an E4M3 value (1 implicit + 3 mantissa)


# --------------------------------------------------------------------------- scalar formats


def quantize_e4m3(x: Tensor) -> Tensor:
    """Round to the nearest FP8 E4M3 value (ties to even), returned in x's dtype.

    Saturating: |x| > 448 (and +-inf) becomes +-448 (E4M3 "fn" has no inf); NaN stays NaN.
    Subnormals go down to 2**-9; 2**-10 and below round to 0. Uses torch's float8_e4m3fn cast
    through fp32, which is RNE on CPU (checked against the closed form in the tests); float64
    inputs are rounded to fp32 first, a double rounding that can only matter within 2**-24
    relative of an E4M3 tie. NVFP4 block scales never exceed 448 by construction.
    """
    y = x.float().clamp(-E4M3_MAX, E4M3_MAX)  # the cast alone is not specified to saturate
    return y.to(torch.float8_e4m3fn).to(x.dtype)


def _round_e2m1(y: Tensor, stochastic: bool, generator: torch.Generator | None) -> Tensor:
    """Round y (already divided by its scale) onto +-E2M1_GRID, saturating at +-6.

    The grid has step 0.5 on [0, 2), 1 on [2, 4) and 2 on [4, 6]. Dividing by the step maps
    each segment onto consecutive integers whose parity is the parity of the FP4 code, so
    torch.round (half to even) is exactly E2M1 round-to-nearest-even: 0.25 -> 0, 0.75 -> 1,
    1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4. Stochastic rounding rounds up with
    probability (t - lo) / step, so E[q] = t for |y| <= 6 (unbiased; clipping is not).
    """
    t = y.abs().clamp_(max=E2M1_MAX)
    # step = 0.5, 1, 2 on [0, 2), [2, 4), [4, 6]; arithmetic is faster than nested where
    step = (t >= 2).to(t.dtype).add_((t >= 4).to(t.dtype), alpha=2).mul_(0.5).add_(0.5)
    if stochastic:
        lo = torch.floor(t / step).mul_(step)
        u = torch.rand(t.shape, generator=generator, dtype=t.dtype, device=t.device)
        q = lo.add_(step * (u < (t - lo) / step).to(t.dtype))
    else:
        q = torch.round(t / step).mul_(step)
    return torch.copysign(q, y)


# --------------------------------------------------------------------------- NVFP4 quantizer


def _tensor_scale(amax: Tensor, precision: int) -> Tensor:
    """FP32 per-tensor decode scale amax / (6 * 448), rounded *up* to precision - 6 bits.

    The paper uses amax / (6 * 448) as is. Rounding it up buys exactness: an FP4 value (2
    bits) times an E4M3 scale (4 bits) times this scale then fits the output dtype, so the
    dequantized values are exactly grid * s_b * s_t, 2688 * s_t is exact and requantizing
    recovers the same s_t. The price is that the largest block scale is 448 / (1 + r) instead
    of 448, with r < 2**-17 for fp32 (18 bits kept) and r < 1/2 for bf16 (2 bits kept; bf16
    tensors are rare here, since NVFP4Linear quantizes in fp32). Rounding up keeps s_b <= 448.
    """
    s = amax / (E2M1_MAX * E4M3_MAX)
    bits = max(1, precision - _E2M1_BITS - _E4M3_BITS)
    mant, exp = torch.frexp(s)
    return torch.ldexp(torch.ceil(mant * 2.0**bits) / 2.0**bits, exp)


def _to_blocks(x: Tensor, block: tuple[int, int]) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """View x as (..., n_blocks, elems) after zero-padding; return it and the inverse map."""
    rows, cols = block
    shape = x.shape
    if rows == 1:
        pad = -shape[-1] % cols
        xp = F.pad(x, (0, pad)) if pad else x  # F.pad copies even when there is nothing to add
        blocks = xp.reshape(*shape[:-1], -1, cols)

        def undo(b: Tensor) -> Tensor:
            return b.reshape(xp.shape)[..., : shape[-1]]

        return blocks, undo
    if x.dim() < 2:
        raise ValueError(f"{rows}x{cols} blocks need a tensor with >= 2 dims, got {tuple(shape)}")
    pr, pc = -shape[-2] % rows, -shape[-1] % cols
    xp = F.pad(x, (0, pc, 0, pr)) if pr or pc else x
    r, c = xp.shape[-2] // rows, xp.shape[-1] // cols
    blocks = xp.reshape(*shape[:-2], r, rows, c, cols).transpose(-3, -2)
    blocks = blocks.reshape(*shape[:-2], r * c, rows * cols)

    def undo(b: Tensor) -> Tensor:
        b = b.reshape(*shape[:-2], r, c, rows, cols).transpose(-3, -2).reshape(xp.shape)
        return b[..., : shape[-2], : shape[-1]]

    return blocks, undo


@torch.no_grad()
def nvfp4_quantize(
    x: Tensor,
    block: tuple[int, int] = (1, BLOCK),
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Quantize x to NVFP4 and dequantize: same shape and dtype, values on the NVFP4 grid.

    Two-level scaling (arXiv 2509.25149, NVFP4 quantization):
      s_t = amax(|x|) / (6 * 448)                 FP32 per-tensor scale (see `_tensor_scale`)
      s_b = E4M3(amax(|block|) / 6 / s_t)          per-block scale, fits E4M3 by construction
      Q(x) = round_E2M1(x / (s_b * s_t)) * s_b * s_t

    block=(1, 16): blocks of 16 along the last dim (activations, gradients: the last dim must
    be the GEMM's reduction dim). block=(16, 16): 2D tiles over the last two dims (weights), so
    Q(W).T == Q(W.T). Dims that are not multiples of the block are zero-padded (zeros never
    change an amax) and the padding is dropped again.

    Edge cases: an all-zero tensor or block gives zeros (never NaN). A block whose amax is
    at most 6 * 2**-10 * s_t (about 2**-18.8 of the tensor amax) gets block scale 0 in E4M3
    and flushes to zero, as on hardware. Q is a projection (Q(Q(x)) == Q(x) bit for bit) on
    blocks whose E4M3 scale is a normal (block amax >= ~2**-14.8 of the tensor amax); a
    subnormal block scale can round up by up to 2x, and requantizing then picks a smaller one,
    as real NVFP4 would. NaN and +-inf pass through unchanged and are left out of
    both amaxes, so one bad element does not poison the tensor and NaN checks still see it.
    Computation is in fp32 (fp64 for fp64 input); for fp16, outputs in fp16's subnormal range
    lose exactness. Not differentiable: training goes through `NVFP4Linear`.
    """
    if x.numel() == 0:
        return x.clone()
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    precision = 1 - round(math.log2(torch.finfo(x.dtype).eps))  # significand bits of x.dtype
    xf = x.to(compute)
    mag = xf.abs()
    amax = mag.amax()
    finite = None if torch.isfinite(amax) else torch.isfinite(xf)  # slow path only if needed
    if finite is not None:
        mag = mag.masked_fill(~finite, 0.0)
        amax = mag.amax()

    s_t = _tensor_scale(amax, precision)
    blocks, undo = _to_blocks(xf, block)
    block_amax = _to_blocks(mag, block)[0].amax(-1, keepdim=True)
    s_b = quantize_e4m3(block_amax / (E2M1_MAX * s_t)) if s_t > 0 else torch.zeros_like(block_amax)
    scale = s_b * s_t  # exact: 4 + (precision - 6) significant bits
    # A zero scale means an all-zero or flushed block: divide by 1, saturate, multiply by 0.
    y = blocks / torch.where(scale > 0, scale, 1.0)
    out = undo(_round_e2m1(y, stochastic, generator).mul_(scale))
    if finite is not None:
        out = torch.where(finite, out, xf)
    return out.to(x.dtype)


# --------------------------------------------------------------------------- Hadamard


def hadamard(n: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Normalized Sylvester Hadamard matrix H_n / sqrt(n) (n a power of 2): symmetric, H H^T = I."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"Hadamard size must be a power of 2, got {n}")
    return _sylvester(n).to(dtype=dtype, device=device, copy=True)


@functools.lru_cache(maxsize=8)
def _sylvester(n: int) -> Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:  # H_2k = [[H_k, H_k], [H_k, -H_k]]
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


def random_hadamard_transform(x: Tensor, dim: int, signs: Tensor) -> Tensor:
    """Apply H @ diag(signs) to consecutive blocks of len(signs) entries along `dim`.

    The block matrix is orthogonal, so applying the same transform (same signs) along the
    shared dim of two operands leaves A^T B unchanged in exact arithmetic. If x.shape[dim] is
    not a multiple of len(signs), x is zero-padded along dim first and the result is longer;
    pad both operands alike (this function does) and the zero rows add nothing to A^T B.
    """
    if x.dim() == 1:
        return random_hadamard_transform(x[:, None], 0, signs)[:, 0]
    n = signs.numel()
    hd = hadamard(n, dtype=x.dtype, device=x.device) * signs.to(x.dtype)  # H diag(signs)
    xt = x.movedim(dim, -2)  # a no-op for the (tokens, features) operands of wgrad
    xt = F.pad(xt, (0, 0, 0, -xt.shape[-2] % n))
    out = hd @ xt.reshape(*xt.shape[:-2], -1, n, xt.shape[-1])  # one 16x16 matrix per block
    return out.reshape(xt.shape).movedim(-2, dim)


def _random_signs(n: int, generator: torch.Generator | None, device) -> Tensor:
    bits = torch.randint(0, 2, (n,), generator=generator)
    return (bits * 2 - 1).to(device=device, dtype=torch.float32)


# --------------------------------------------------------------------------- Linear layer


class _NVFP4LinearFn(torch.autograd.Function):
    """y = Q(x) Q(W)^T + b, with the paper's backward (see NVFP4Linear)."""

    @staticmethod
    def forward(ctx, x, weight, bias, generator):
        compute = torch.promote_types(x.dtype, torch.float32)
        x2 = x.reshape(-1, x.shape[-1])
        wq = nvfp4_quantize(weight.to(compute), (BLOCK, BLOCK))  # 2D: reused as-is by dgrad
        y = nvfp4_quantize(x2.to(compute), (1, BLOCK)) @ wq.T
        if bias is not None:
            y = y + bias.to(compute)
        ctx.save_for_backward(x2, wq)  # x in its own dtype; wgrad requantizes it after RHT
        ctx.meta = (x.shape, x.dtype, weight.dtype, bias is not None, generator)
        return y.reshape(*x.shape[:-1], -1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x2, wq = ctx.saved_tensors
        x_shape, x_dtype, w_dtype, has_bias, gen = ctx.meta
        x2 = x2.to(wq.dtype)
        g = grad_out.reshape(-1, grad_out.shape[-1]).to(wq.dtype)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # dgrad: reduce over out_features, 1x16 along dY's rows
            dx = nvfp4_quantize(g, (1, BLOCK), stochastic=True, generator=gen) @ wq
            dx = dx.reshape(x_shape).to(x_dtype)
        if ctx.needs_input_grad[1]:  # wgrad: reduce over tokens, RHT both operands along them
            signs = _random_signs(BLOCK, gen, g.device)
            g_t = random_hadamard_transform(g, 0, signs).T  # (out, tokens): tokens last
            x_t = random_hadamard_transform(x2, 0, signs).T  # (in, tokens)
            gq = nvfp4_quantize(g_t, (1, BLOCK), stochastic=True, generator=gen)
            dw = (gq @ nvfp4_quantize(x_t, (1, BLOCK)).T).to(w_dtype)
        if has_bias and ctx.needs_input_grad[2]:
            db = g.sum(0).to(w_dtype)
        return dx, dw, db, None


class NVFP4Linear(nn.Linear):
    """nn.Linear whose three GEMMs run on NVFP4-quantized operands (arXiv 2509.25149).

    Same parameters and state-dict keys as nn.Linear. For x of shape (..., in_features):
      forward  y  = Q(x)[1x16] @ Q(W)[16x16]^T + b
      dgrad    dX = Q_sr(dY)[1x16] @ Q(W)[16x16]          (the forward's quantized W, reused)
      wgrad    dW = Q_sr(RHT(dY))^T @ Q(RHT(x))          (1x16 blocks along tokens)
      bias     db = sum of dY over tokens                 (high precision)
    Q_sr rounds stochastically; RHT is a 16x16 random Hadamard transform along the token dim
    with fresh signs each backward. `generator` (seeded with `seed`) drives both, so a run
    is reproducible; reseed it with `layer.generator.manual_seed(s)`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None, seed: int = 0) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_linear(cls, linear: nn.Linear, seed: int = 0) -> NVFP4Linear:
        """An NVFP4Linear sharing linear's Parameter objects (no copy, optimizer unaffected)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight, new.bias = linear.weight, linear.bias
        new.generator = torch.Generator().manual_seed(seed)
        new.train(linear.training)
        return new

    def forward(self, x: Tensor) -> Tensor:
        return _NVFP4LinearFn.apply(x, self.weight, self.bias, self.generator)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", nvfp4"


def convert_to_nvfp4(
    model: nn.Module,
    keep: Callable[[str, nn.Linear], bool] | None = None,
    seed: int = 0,
) -> nn.Module:
    """Swap every plain nn.Linear in model for an NVFP4Linear sharing its Parameters.

    `keep(qualified_name, module)` returning True leaves that layer in high precision (the
    paper keeps a small share of linear layers, mostly the final blocks, in BF16). Only
    modules whose type is exactly nn.Linear are swapped: subclasses may have their own forward,
    and some (nn.MultiheadAttention's out_proj) are never called through forward. A Linear shared
    under several names is swapped everywhere for one NVFP4Linear, decided by its first name.
    Each swapped layer gets its own generator, seeded seed, seed + 1, ... in module order.
    Returns model (modified in place), or the new layer if model itself is an nn.Linear.
    """
    if type(model) is nn.Linear:
        return model if keep and keep("", model) else NVFP4Linear.from_linear(model, seed)
    swapped: dict[int, nn.Module] = {}
    for name, module in list(model.named_modules(remove_duplicate=False)):
        for child_name, child in list(module._modules.items()):  # named_children() dedups
            if type(child) is not nn.Linear:
                continue
            if id(child) not in swapped:
                qualified = f"{name}.{child_name}" if name else child_name
                kept = keep is not None and keep(qualified, child)
                swapped[id(child)] = child if kept else NVFP4Linear.from_linear(
                    child, seed + len(swapped))
            setattr(module, child_name, swapped[id(child)])
    return model
