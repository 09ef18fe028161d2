"""NVFP4 fake quantization (synth.model.nvfp4) against an independent reference.

The reference below re-derives the format from the specs rather than from the module: E4M3
by its closed form (OCP MX / OCP FP8: 3 mantissa bits, min normal exponent -6, max 448) and
E2M1 by brute-force nearest grid point, ties to the even FP4 code. Only the per-tensor scale
formula is shared, because it is part of the recipe (arXiv 2509.25149) and not a rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.functional import cosine_similarity

from synth.model.nvfp4 import (
    E2M1_GRID, NVFP4Linear, convert_to_nvfp4, hadamard, nvfp4_quantize, quantize_e4m3,
    random_hadamard_transform,
)

GRID = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=torch.float64)
SIGNED_GRID = torch.cat([-GRID.flip(0), GRID[1:]])
CODE_IS_EVEN = torch.tensor([True, False] * 4)  # FP4 codes 0..7 for the GRID entries
BLOCKS = [(1, 16), (16, 16)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- reference


def e4m3_reference(v: torch.Tensor) -> torch.Tensor:
    """Closed-form RNE to E4M3 in float64, saturating at 448: ulp = 2**(max(e, -6) - 3)."""
    v = v.double()
    a = v.abs().clamp(max=448.0)
    e = torch.floor(torch.log2(a.clamp(min=2.0**-30))).clamp(min=-6)
    ulp = torch.exp2(e - 3)
    return torch.copysign(torch.round(a / ulp) * ulp, v)


def e2m1_reference(y: torch.Tensor) -> torch.Tensor:
    """Nearest point of GRID to |y| (saturating at 6); on a tie, the even FP4 code."""
    t = y.double().abs().clamp(max=6.0).unsqueeze(-1)
    dist = (t - GRID).abs()
    best = dist.min(-1, keepdim=True).values
    tied = dist == best
    pick = torch.where(tied.sum(-1, keepdim=True) > 1, tied & CODE_IS_EVEN, tied)
    return torch.copysign((pick * GRID).sum(-1), y.double())


def tensor_scale(x: torch.Tensor) -> torch.Tensor:
    """amax / (6 * 448) in fp32, rounded up to 18 significant bits (see _tensor_scale)."""
    s = (x.float().abs().amax() / 2688.0).double()
    mant, exp = torch.frexp(s)
    return torch.ldexp(torch.ceil(mant * 2**18) / 2**18, exp)


def block_view(x: torch.Tensor, block) -> torch.Tensor:
    """(..., n_blocks, elems) in float64, zero-padded; same layout as the module's."""
    rows, cols = block
    x = x.double()
    if rows == 1:
        x = nn.functional.pad(x, (0, -x.shape[-1] % cols))
        return x.reshape(*x.shape[:-1], -1, cols)
    x = nn.functional.pad(x, (0, -x.shape[-1] % cols, 0, -x.shape[-2] % rows))
    r, c = x.shape[-2] // rows, x.shape[-1] // cols
    x = x.reshape(*x.shape[:-2], r, rows, c, cols).transpose(-3, -2)
    return x.reshape(*x.shape[:-4], r * c, rows * cols)


def scales(x: torch.Tensor, block):
    """Per-element view of (exact block scale s, E4M3 block scale s_b, tensor scale s_t)."""
    s_t = tensor_scale(x)
    blocks = block_view(x, block)
    s = blocks.abs().amax(-1, keepdim=True) / (6 * s_t)
    return blocks, s, e4m3_reference(s), s_t


def nvfp4_reference(x: torch.Tensor, block) -> torch.Tensor:
    """Q(x) in block layout, float64, from the reference roundings."""
    blocks, _, s_b, s_t = scales(x, block)
    scale = s_b * s_t
    y = torch.where(scale > 0, blocks / torch.where(scale > 0, scale, 1.0), 0.0)
    return e2m1_reference(y) * scale


def _student_t(shape, g):
    """Student-t with 2 degrees of freedom (infinite variance): z / sqrt(chi2_2 / 2)."""
    z = torch.randn(shape, generator=g)
    chi2 = torch.randn((*shape, 2), generator=g).pow(2).sum(-1)
    return z / (chi2 / 2).sqrt()


def inputs(kind: str, shape=(48, 80), seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        return torch.randn(shape, generator=g)
    if kind == "heavy_tailed":  # outliers dominate the tensor amax
        return _student_t(shape, g)
    if kind == "tiny":  # whole tensor near the bottom of fp32's normal range
        return torch.randn(shape, generator=g) * 1e-30
    if kind == "mixed_range":  # 16x16 tiles spanning 10 decades: some block scales are
        # E4M3 subnormals and some underflow to 0 (the block flushes)
        tiles = 10 ** -(10 * torch.rand(-(-shape[0] // 16), -(-shape[1] // 16), generator=g))
        tiles = tiles.repeat_interleave(16, 0).repeat_interleave(16, 1)
        return torch.randn(shape, generator=g) * tiles[: shape[0], : shape[1]]
    raise ValueError(kind)


KINDS = ["normal", "heavy_tailed", "tiny", "mixed_range"]


# --------------------------------------------------------------------------- E4M3 and E2M1


def test_e4m3_cast_matches_the_closed_form():
    every_code = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    finite = every_code[torch.isfinite(every_code)].unique()  # 253 values: +-0 and 252 others
    mids = (finite[1:] + finite[:-1]) / 2  # every tie: must go to the even mantissa
    sweep = torch.logspace(-12, 3, 20001) * torch.tensor([1.0, -1.0]).repeat(10001)[:20001]
    for v in (finite, mids, sweep):
        assert torch.equal(quantize_e4m3(v).double(), e4m3_reference(v))
    assert torch.equal(quantize_e4m3(finite), finite)


@pytest.mark.parametrize("value, expected", [  # saturation and specials
    (448.0, 448.0), (464.0, 448.0), (1e9, 448.0), (-1e9, -448.0), (math.inf, 448.0),
    (-math.inf, -448.0), (2.0**-9, 2.0**-9), (2.0**-10, 0.0), (1.5 * 2.0**-10, 2.0**-9),
    (1.0625, 1.0), (1.1875, 1.25),  # ties to even mantissa
])
def test_e4m3_saturates_and_rounds_to_even(value, expected):
    assert quantize_e4m3(torch.tensor([value])).item() == expected


def test_e4m3_keeps_nan():
    assert torch.isnan(quantize_e4m3(torch.tensor([math.nan]))).all()


def test_e2m1_grid_constant():
    assert E2M1_GRID.tolist() == GRID.tolist()


@pytest.mark.parametrize("y, expected", [  # with S = 1 the tensor is quantized straight to E2M1
    (0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0),
    (0.26, 0.5), (2.51, 3.0), (5.01, 6.0), (-0.75, -1.0), (-5.0, -4.0), (6.0, 6.0),
])
def test_e2m1_round_to_nearest_even(y, expected):
    # Block 0 holds amax 2688 -> s_t = 1, s_b = 448; block 1 holds a 6 -> s_b = 1: S = 1.
    x = torch.zeros(1, 32)
    x[0, 0], x[0, 16], x[0, 17] = 2688.0, 6.0, y
    assert nvfp4_quantize(x)[0, 17].item() == expected


# --------------------------------------------------------------------------- the quantizer


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_reference(block, kind):
    x = inputs(kind, (37, 70))  # neither dim divisible by 16
    ref = nvfp4_reference(x, block)
    assert torch.equal(block_view(nvfp4_quantize(x, block), block), ref)


@pytest.mark.parametrize("block", BLOCKS)
def test_reproduces_its_grid_exactly(block):
    """grid value * E4M3 block scale * tensor scale comes back bit for bit."""
    g = torch.Generator().manual_seed(1)
    s_t = 0.6875 * 2.0**-20  # 0.1011b: <= 18 significant bits, like the module's tensor scale
    e4m3 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    e4m3 = e4m3[torch.isfinite(e4m3) & (e4m3 > 0)]
    shape = (64, 96)
    layout = block_view(torch.zeros(shape), block).shape  # (..., n_blocks, elems)
    s_b = e4m3[torch.randint(len(e4m3), (*layout[:-1], 1), generator=g)]
    s_b.view(-1)[0] = 448.0  # the block with the tensor amax: amax / 2688 gives s_t exactly
    q = SIGNED_GRID[torch.randint(len(SIGNED_GRID), layout, generator=g)]
    q[..., 0] = 6.0  # each block's amax is 6 * s_b, so its block scale is recovered exactly
    x_blocks = (q * s_b.double() * s_t).float()
    x = _from_blocks(x_blocks, shape, block)

    out = nvfp4_quantize(x, block)
    assert torch.equal(out, x)
    # And on arbitrary data: every output / (s_b * s_t) lies on +-E2M1_GRID.
    y = inputs("heavy_tailed", shape)
    _, _, s_b_ref, s_t_ref = scales(y, block)
    ratio = block_view(nvfp4_quantize(y, block), block) / (s_b_ref * s_t_ref)
    assert torch.isin(ratio, SIGNED_GRID).all()


def _from_blocks(blocks: torch.Tensor, shape, block) -> torch.Tensor:
    rows, cols = block
    if rows == 1:
        return blocks.reshape(shape)
    r, c = shape[0] // rows, shape[1] // cols
    return blocks.reshape(r, c, rows, cols).transpose(1, 2).reshape(shape)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("kind", KINDS)
def test_idempotent(block, kind):
    x = inputs(kind, (40, 50))
    q = nvfp4_quantize(x, block)
    _, _, s_b, _ = scales(x, block)
    normal = (s_b >= 2.0**-6).expand(*s_b.shape[:-1], 16 * block[0])
    if kind == "mixed_range":  # exact only where block scales are E4M3 normals: see below
        assert not normal.all()
    else:
        assert normal.all()
    assert torch.equal(block_view(nvfp4_quantize(q, block), block)[normal],
                       block_view(q, block)[normal])


def test_not_idempotent_when_a_subnormal_block_scale_rounds_up():
    """The documented exception. s_t = 1; block amax 4.8 * 2**-8 gives s = 3.2 * 2**-10,
    which E4M3 (subnormal step 2**-9) rounds up to 2**-8, so the block max 4.8 becomes 4.
    Requantizing sees block amax 4 * 2**-8, s = 2.67 * 2**-10 -> 2**-9, and 8 saturates to 6."""
    x = torch.zeros(1, 32)
    x[0, 0], x[0, 16] = 2688.0, 4.8 * 2**-8
    q = nvfp4_quantize(x)
    assert q[0, 16].item() == 4 * 2**-8
    assert nvfp4_quantize(q)[0, 16].item() == 6 * 2**-9


def test_idempotent_in_bf16():
    q = nvfp4_quantize(inputs("normal").bfloat16())
    assert q.dtype == torch.bfloat16
    assert torch.equal(nvfp4_quantize(q), q)


# Error bound. Let m be the block amax, s = m / (6 s_t) the exact block scale and s_b = E4M3(s).
# Round-to-nearest in E4M3 is off by at most half an ulp: |s_b - s| <= d = max(2**-4 s, 2**-10)
# (relative 2**-4 for normals with 3 mantissa bits, absolute 2**-10 for subnormals). So the
# scale S = s_b s_t lies in [S_lo, S_hi] = [(s - d) s_t, (s + d) s_t].
#   * |x| <= 6 S: x / S goes to the nearest E2M1 point, error <= S h(|x| / S) where h is half
#     the grid gap (1/4 on [0, 2), 1/2 on [2, 4), 1 on [4, 6]); h is nondecreasing, so
#     error <= S_hi h(|x| / S_lo).
#   * |x| > 6 S (s_b rounded down): x saturates at 6 S, error = |x| - 6 S <= |x| - 6 S_lo.
# Hence |x - Q(x)| <= max(S_hi h(|x| / S_lo), |x| - 6 S_lo), plus fp32 rounding of x / S and
# of the product (a few ulps of |x|). For a normal block scale this is half a grid gap at
# |x|'s magnitude times m / 6, inflated by 2**-4; a block whose scale underflows may flush.
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("kind", KINDS)
def test_error_bound(block, kind):
    x = inputs(kind, (64, 96), seed=3)
    blocks, s, _, s_t = scales(x, block)
    err = (block_view(nvfp4_quantize(x, block), block) - blocks).abs()
    d = torch.maximum(s * 2**-4, torch.full_like(s, 2.0**-10))
    s_lo, s_hi = ((s - d) * s_t).clamp(min=0), (s + d) * s_t
    t = blocks.abs() / s_lo
    half_gap = torch.where(t < 2, 0.25, torch.where(t < 4, 0.5, 1.0))
    bound = torch.maximum(s_hi * half_gap, blocks.abs() - 6 * s_lo)
    assert (err <= bound + 4e-7 * blocks.abs()).all()  # measured: err reaches 0.98-1.0 of it
    # Which regimes this input exercised: all-normal block scales, or all three.
    normal, flushed = s >= 2.0**-6, s < 2.0**-10
    if kind == "mixed_range":
        assert normal.any() and flushed.any() and (~normal & ~flushed).any()
    else:
        assert normal.all()


# --------------------------------------------------------------------------- edge cases


def test_zeros_and_all_zero_blocks_give_zeros():
    x = torch.zeros(4, 40)
    assert torch.equal(nvfp4_quantize(x), x)
    assert torch.equal(nvfp4_quantize(x, (16, 16)), x)
    x[0, :16] = torch.randn(16)  # one live block, the others stay exactly zero
    out = nvfp4_quantize(x)
    assert torch.isfinite(out).all() and (out[1:] == 0).all() and (out[0, 16:] == 0).all()


def test_nonfinite_pass_through_and_do_not_poison_the_tensor():
    x = inputs("normal", (4, 32))
    bad = x.clone()
    bad[0, 3], bad[1, 5], bad[2, 7] = math.nan, math.inf, -math.inf
    out = nvfp4_quantize(bad)
    assert torch.isnan(out[0, 3]) and out[1, 5] == math.inf and out[2, 7] == -math.inf
    # Every finite element is quantized as if the bad ones were zeros.
    clean = bad.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    finite = torch.isfinite(bad)
    assert torch.equal(out[finite], nvfp4_quantize(clean)[finite])


def test_empty_tensor():
    assert nvfp4_quantize(torch.zeros(0, 16)).shape == (0, 16)


def test_2d_blocks_need_a_matrix():
    with pytest.raises(ValueError, match="2 dims"):
        nvfp4_quantize(torch.randn(20), (16, 16))


# --------------------------------------------------------------------------- stochastic rounding


def test_stochastic_rounding_is_unbiased_and_nearest_is_deterministic():
    x = inputs("normal", (4, 64), seed=5)
    n = 4000
    g = torch.Generator().manual_seed(0)
    # Copies share every scale: 1x16 blocks live within a row and the tensor amax is the same.
    draws = nvfp4_quantize(x.expand(n, *x.shape), stochastic=True, generator=g).double()
    blocks, _, s_b, s_t = scales(x, (1, 16))
    scale = (s_b * s_t).reshape(4, 4, 1).expand(4, 4, 16).reshape(x.shape)
    t = x.double().abs() / scale
    unit = torch.where(t < 2, 0.5, torch.where(t < 4, 1.0, 2.0))  # grid gap around t
    step = unit * scale
    clipped = t > 6  # s_b rounded down: saturates at 6 S every time (the bias SR cannot fix)
    # Each draw is one of the two grid neighbours of t, with x's sign.
    lo = torch.floor(t.clamp(max=6) / unit) * unit
    got = draws / scale
    assert ((got.abs() == lo) | (got.abs() == lo + unit)).all()
    assert (got * x.sign() >= 0).all()
    # Variance <= (step / 2)**2, so the mean of n draws is within 5 standard errors of x with
    # overwhelming probability (256 elements).
    mean = draws.mean(0)
    tol = 5 * step / 2 / math.sqrt(n)
    assert ((mean - x.double()).abs()[~clipped] <= tol[~clipped]).all()
    assert clipped.any()  # this seed has both kinds of element
    assert torch.equal(draws[:, clipped], (6 * scale * x.sign())[clipped].expand(n, -1).double())
    p_up = (t.clamp(max=6) - lo) / unit
    assert (draws.std(0)[(p_up > 0.01) & (p_up < 0.99)] > 0).all()  # off-grid values do vary
    # Round-to-nearest ignores the generator and never varies.
    once = nvfp4_quantize(x)
    assert torch.equal(once, nvfp4_quantize(x, generator=torch.Generator().manual_seed(9)))
    assert torch.equal(block_view(once, (1, 16)), nvfp4_reference(x, (1, 16)).float().double())


def test_stochastic_rounding_is_reproducible_with_a_seed():
    x = inputs("normal")
    a = nvfp4_quantize(x, stochastic=True, generator=torch.Generator().manual_seed(4))
    b = nvfp4_quantize(x, stochastic=True, generator=torch.Generator().manual_seed(4))
    c = nvfp4_quantize(x, stochastic=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- Hadamard


@pytest.mark.parametrize("n", [1, 2, 4, 16, 64])
def test_hadamard_is_orthogonal(n):
    h = hadamard(n, dtype=torch.float64)
    assert torch.allclose(h @ h.T, torch.eye(n, dtype=torch.float64), atol=1e-14)
    assert torch.allclose(h.abs(), torch.full((n, n), n**-0.5, dtype=torch.float64))


@pytest.mark.parametrize("n", [0, 3, 12])
def test_hadamard_rejects_non_powers_of_two(n):
    with pytest.raises(ValueError):
        hadamard(n)


@pytest.mark.parametrize("tokens", [48, 37])
def test_rht_leaves_the_token_contraction_unchanged(tokens):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(tokens, 24, generator=g, dtype=torch.float64)
    y = torch.randn(tokens, 8, generator=g, dtype=torch.float64)
    signs = torch.randint(0, 2, (16,), generator=g).double() * 2 - 1
    xr, yr = random_hadamard_transform(x, 0, signs), random_hadamard_transform(y, 0, signs)
    assert xr.shape == (48, 24)  # padded to a multiple of 16 along the transformed dim
    assert torch.allclose(xr.T @ yr, x.T @ y, atol=1e-12)
    assert not torch.allclose(xr[:tokens], x)
    # Also along a non-leading dim: the transform acts on dim only.
    assert torch.allclose(random_hadamard_transform(x.T, 1, signs), xr.T)


def test_rht_is_h_times_diag_signs_per_block():
    g = torch.Generator().manual_seed(6)
    v = torch.randn(32, generator=g, dtype=torch.float64)
    signs = torch.randint(0, 2, (16,), generator=g).double() * 2 - 1
    hd = hadamard(16, dtype=torch.float64) @ torch.diag(signs)
    expected = torch.cat([hd @ v[:16], hd @ v[16:]])
    assert torch.allclose(random_hadamard_transform(v, 0, signs), expected, atol=1e-14)


def test_rht_spreads_a_block_outlier():
    x = torch.zeros(16, 1)
    x[5] = 8.0
    out = random_hadamard_transform(x, 0, torch.ones(16))
    assert torch.allclose(out.abs(), torch.full((16, 1), 2.0))  # 8 / sqrt(16) everywhere


# --------------------------------------------------------------------------- 2D weight blocks


@pytest.mark.parametrize("shape", [(48, 64), (37, 50), (3, 40, 24)])
def test_weight_blocks_commute_with_transpose(shape):
    w = inputs("heavy_tailed", shape)
    assert torch.equal(nvfp4_quantize(w, (16, 16)).transpose(-1, -2),
                       nvfp4_quantize(w.transpose(-1, -2), (16, 16)))
    # 1x16 blocks do not: the transposed tensor is blocked along the other dim.
    assert not torch.equal(nvfp4_quantize(w).transpose(-1, -2), nvfp4_quantize(w.transpose(-1, -2)))


# --------------------------------------------------------------------------- NVFP4Linear


def _pair(in_features=256, out_features=128, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = nn.Linear(in_features, out_features, bias=bias)
    return ref, NVFP4Linear.from_linear(ref)


def test_linear_forward_is_the_quantized_gemm_and_close_to_fp():
    ref, q = _pair()
    x = torch.randn(4, 64, 256)
    y, y_ref = q(x), ref(x)
    expected = nvfp4_quantize(x.reshape(-1, 256)) @ nvfp4_quantize(ref.weight, (16, 16)).T
    assert torch.allclose(y, (expected + ref.bias).reshape(4, 64, 128), atol=1e-5)
    # Each operand carries ~9-11% relative RMS error on Gaussian data (E2M1 with 16-element
    # blocks); independent errors add in quadrature, so the GEMM output is off by ~15%.
    rel = ((y - y_ref).norm() / y_ref.norm()).item()
    assert 0.08 < rel < 0.2, rel


def test_linear_gradients_close_to_fp():
    ref, q = _pair()
    x = torch.randn(4, 64, 256, requires_grad=True)
    grad = torch.randn(4, 64, 128)
    g_ref = torch.autograd.grad(ref(x), (x, ref.weight, ref.bias), grad)
    g_q = torch.autograd.grad(q(x), (x, q.weight, q.bias), grad)
    for a, b in zip(g_ref[:2], g_q[:2]):
        assert a.shape == b.shape
        assert cosine_similarity(a.flatten(), b.flatten(), 0) > 0.97
    assert torch.allclose(g_ref[2], g_q[2], atol=1e-4)  # bias gradient stays high precision


def test_linear_dgrad_is_unbiased_over_stochastic_rounding():
    """E[dX] = dY Q(W): averaged over many backward passes, the SR noise cancels."""
    ref, q = _pair(64, 32)
    x = torch.randn(8, 64, requires_grad=True)
    grad = torch.randn(8, 32)
    target = grad @ nvfp4_quantize(ref.weight, (16, 16))
    mean = sum(torch.autograd.grad(q(x), x, grad)[0] for _ in range(400)) / 400
    single = torch.autograd.grad(q(x), x, grad)[0]
    assert (mean - target).norm() < 0.15 * (single - target).norm()


def test_linear_3d_input_odd_sizes_no_bias_and_bf16():
    ref, q = _pair(33, 20, bias=False)
    x = torch.randn(2, 5, 33, requires_grad=True)
    y = q(x)
    assert y.shape == (2, 5, 20) and q.bias is None
    y.sum().backward()
    assert x.grad.shape == x.shape and q.weight.grad.shape == (20, 33)
    q16 = NVFP4Linear(33, 20, dtype=torch.bfloat16)
    xb = torch.randn(2, 5, 33, dtype=torch.bfloat16, requires_grad=True)
    out = q16(xb)
    out.float().sum().backward()
    assert out.dtype == xb.grad.dtype == q16.weight.grad.dtype == torch.bfloat16


def test_linear_is_reproducible_from_its_seed():
    def grads(seed):
        _, q = _pair(64, 32)
        q.generator.manual_seed(seed)
        x = torch.ones(16, 64, requires_grad=True) * torch.linspace(-1, 1, 64)
        return torch.autograd.grad(q(x).pow(2).sum(), (x, q.weight))

    a, b, c = grads(1), grads(1), grads(2)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[1], c[1])


def test_linear_state_dict_matches_nn_linear():
    ref, q = _pair(40, 24)
    assert list(q.state_dict()) == list(ref.state_dict()) == ["weight", "bias"]
    fresh = NVFP4Linear(40, 24)
    fresh.load_state_dict(ref.state_dict(), strict=True)
    assert torch.equal(fresh.weight, ref.weight)


# --------------------------------------------------------------------------- convert_to_nvfp4


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(32), nn.Linear(32, 32))
                                    for _ in range(3))
        self.shared = nn.Linear(32, 32)
        self.alias = self.shared  # the same Linear under two names
        self.attn = nn.MultiheadAttention(32, 4)  # out_proj is a Linear subclass
        self.head = nn.Linear(32, 50)


def test_convert_respects_keep_and_shares_parameters():
    model = _Tiny()
    before = dict(model.named_parameters())
    keys = list(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def keep(name, module):
        seen.append(name)
        return name == "head" or name.startswith("blocks.2")

    assert convert_to_nvfp4(model, keep) is model
    assert type(model.head) is nn.Linear and type(model.blocks[2][1]) is nn.Linear
    assert type(model.blocks[0][1]) is NVFP4Linear and type(model.blocks[1][1]) is NVFP4Linear
    assert type(model.shared) is NVFP4Linear and model.alias is model.shared
    assert type(model.attn.out_proj) is not NVFP4Linear
    assert isinstance(model.blocks[0][0], nn.LayerNorm) and isinstance(model.embed, nn.Embedding)
    assert sorted(seen) == ["blocks.0.1", "blocks.1.1", "blocks.2.1", "head", "shared"]
    assert list(model.state_dict()) == keys
    after = dict(model.named_parameters())
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    # The optimizer built before conversion still steps the live weights.
    w0 = model.blocks[0][1].weight.detach().clone()
    model.blocks[0][1](torch.randn(4, 32)).sum().backward()
    opt.step()
    assert not torch.equal(model.blocks[0][1].weight, w0)


def test_convert_everything_and_a_bare_linear():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    convert_to_nvfp4(model)
    assert [type(m) for m in model] == [NVFP4Linear, nn.ReLU, NVFP4Linear]
    lin = nn.Linear(8, 8)
    new = convert_to_nvfp4(lin)
    assert type(new) is NVFP4Linear and new.weight is lin.weight and new.bias is lin.bias
    assert convert_to_nvfp4(lin, keep=lambda name, m: True) is lin


# --------------------------------------------------------------------------- training


D_IN, D_HIDDEN, N_CLASSES = 32, 64, 8


def _batch(g: torch.Generator, n: int):
    """A noisy teacher: labels sampled from softmax(2.5 tanh(X T)); no model reaches 0 loss."""
    teacher = torch.randn(D_IN, N_CLASSES, generator=torch.Generator().manual_seed(1))
    x = torch.randn(n, D_IN, generator=g)
    logits = torch.tanh(x @ teacher / D_IN**0.5) * 2.5
    return x, torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)


def _train(nvfp4: bool, steps: int = 300) -> tuple[float, float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D_IN, D_HIDDEN), nn.GELU(), nn.Linear(D_HIDDEN, D_HIDDEN),
                          nn.GELU(), nn.Linear(D_HIDDEN, N_CLASSES))
    if nvfp4:
        convert_to_nvfp4(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x_test, y_test = _batch(torch.Generator().manual_seed(99), 8192)
    with torch.no_grad():
        initial = nn.functional.cross_entropy(model(x_test), y_test).item()
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        x, y = _batch(g, 256)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return initial, nn.functional.cross_entropy(model(x_test), y_test).item()


def test_tiny_mlp_trains_to_within_a_few_percent_of_full_precision():
    initial, fp = _train(nvfp4=False)
    _, fp4 = _train(nvfp4=True)
    assert fp < 0.8 * initial  # training matters: the gap below is small next to this
    assert abs(fp4 - fp) / fp < 0.03, (fp, fp4)
