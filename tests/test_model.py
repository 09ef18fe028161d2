"""The hybrid model: every fast path against its plain reference, and the properties training
and decoding rely on (causality, initial loss, overfitting, speculative == greedy).

Exactness checks run in float64 on tiny dims, so a tolerance of 1e-9 separates "the same
computation" from "a bug"; the one training run (a module fixture) is shared by the overfit and
speculative tests.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from synth.errors import SynthError
from synth.model import CONFIGS, HybridConfig, HybridLM, config_by_name
from synth.model.hybrid import MoE, moe_dense_reference, ssd_chunked, ssd_sequential


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_cfg(**overrides) -> HybridConfig:
    """Every pattern char present, several Mamba heads, chunk 8 (so prefill spans chunks)."""
    base = dict(vocab_size=64, d_model=32, pattern="M*EM-E", n_heads=4, n_kv_heads=2, d_state=8,
                expand=2, mamba_head_dim=8, d_conv=4, chunk_size=8, d_ff=48, n_experts=4,
                top_k=2, d_expert=16, mtp_depths=2, init_std=0.1)
    base.update(overrides)
    return HybridConfig(**base)


def fp64_model(seed: int = 0, **overrides) -> HybridLM:
    torch.manual_seed(seed)
    return HybridLM(toy_cfg(**overrides)).double().eval()


def close(a, b, tol=1e-9):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


# ---- 1. the SSD scan ------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 7, 16, 64, 100])
@pytest.mark.parametrize("carried_state", [False, True])
def test_chunked_ssd_equals_recurrence(length, carried_state):
    g = torch.Generator().manual_seed(length)
    b, H, P, N = 2, 3, 4, 5
    x = torch.randn(b, length, H, P, generator=g, dtype=torch.float64)
    dt = torch.nn.functional.softplus(torch.randn(b, length, H, generator=g, dtype=torch.float64))
    A = -torch.exp(torch.randn(H, generator=g, dtype=torch.float64))
    B = torch.randn(b, length, N, generator=g, dtype=torch.float64)
    C = torch.randn(b, length, N, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, H, P, N, generator=g, dtype=torch.float64) if carried_state else None
    y_ref, h_ref = ssd_sequential(x, dt, A, B, C, 16, initial_state=h0)
    y, h = ssd_chunked(x, dt, A, B, C, 16, initial_state=h0)
    assert y.shape == (b, length, H, P) and h.shape == (b, H, P, N)
    close(y, y_ref, 1e-10)
    close(h, h_ref, 1e-10)


def test_chunked_ssd_gradients_equal_recurrence():
    """Training differentiates the chunked scan: its gradients (inputs, decay, carried-in
    state) equal the sequential recurrence's, in fp64."""
    g = torch.Generator().manual_seed(9)
    b, L, H, P, N = 2, 21, 3, 4, 5
    inputs = [torch.randn(b, L, H, P, generator=g, dtype=torch.float64),
              torch.nn.functional.softplus(torch.randn(b, L, H, generator=g, dtype=torch.float64)),
              -torch.exp(torch.randn(H, generator=g, dtype=torch.float64)),
              torch.randn(b, L, N, generator=g, dtype=torch.float64),
              torch.randn(b, L, N, generator=g, dtype=torch.float64),
              torch.randn(b, H, P, N, generator=g, dtype=torch.float64)]
    w_y = torch.randn(b, L, H, P, generator=g, dtype=torch.float64)
    w_h = torch.randn(b, H, P, N, generator=g, dtype=torch.float64)
    grads = []
    for scan in (ssd_sequential, ssd_chunked):
        leaves = [t.clone().requires_grad_() for t in inputs]
        x, dt, A, B, C, h0 = leaves
        y, h = scan(x, dt, A, B, C, 8, initial_state=h0)
        ((y * w_y).sum() + (h * w_h).sum()).backward()
        grads.append([t.grad for t in leaves])
    for got, want in zip(grads[1], grads[0]):
        assert torch.isfinite(got).all()
        close(got, want, 1e-9)


# ---- 2 and 10. cached decoding == one full forward --------------------------------------------


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("splits", [[20], [7] + [1] * 13, [7, 5] + [1] * 8, [1] * 20],
                         ids=["prefill", "prefill+steps", "two-prefills+steps", "steps"])
def test_cached_decoding_equals_full_forward(rope, splits):
    model = fp64_model(rope=rope)
    ids = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(1))
    full = model(ids).logits
    cache = model.new_cache(2)
    parts, at = [], 0
    for n in splits:
        parts.append(model.forward_cached(ids[:, at:at + n], cache))
        at += n
    close(torch.cat(parts, dim=1), full)


def test_rope_changes_the_model():
    """The option is live: same weights, RoPE on vs off give different logits."""
    ids = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(2))
    nope = fp64_model(pattern="*-")
    rope = fp64_model(pattern="*-", rope=True)
    rope.load_state_dict(nope.state_dict())
    assert (rope(ids).logits - nope(ids).logits)[:, 1:].abs().max() > 1e-4


def test_rollback_restores_exact_state():
    """Verify 3 tokens keeping history, keep 1, continue: same as never seeing the other 2."""
    model = fp64_model()
    ids = torch.randint(0, 64, (1, 14), generator=torch.Generator().manual_seed(3))
    a = model.new_cache(1)
    model.forward_cached(ids[:, :10], a)
    verify = model.forward_cached(ids[:, 10:13], a, keep_history=True)
    a.rollback(1)
    b = model.new_cache(1)
    model.forward_cached(ids[:, :10], b)
    steps = [model.forward_cached(ids[:, i:i + 1], b) for i in (10, 11, 12)]
    close(verify, torch.cat(steps, dim=1))  # the verify pass itself equals stepping
    b2 = model.new_cache(1)
    model.forward_cached(ids[:, :11], b2)
    close(model.forward_cached(ids[:, 13:14], a), model.forward_cached(ids[:, 13:14], b2))
    assert a.seen == b2.seen == 12


def test_decode_head_equals_head():
    """decode_logits (transposed copy / 64-row blocks) == logits, and the copy follows weight
    updates; draft_logits (int8 weights) is only close."""
    model = fp64_model()
    hidden = torch.randn(9, 1, 32, dtype=torch.float64)
    for rows in (1, 2, 3, 9):
        close(model.decode_logits(hidden[:rows]), model.logits(hidden[:rows]))
    with torch.no_grad():
        model.head.weight.mul_(2.0)  # in place, like an optimizer step
    close(model.decode_logits(hidden[:1]), model.logits(hidden[:1]))
    exact, draft = model.logits(hidden), model.draft_logits(hidden).to(torch.float64)
    assert (draft - exact.reshape(draft.shape)).abs().max() < 0.05 * exact.abs().max()


@pytest.mark.parametrize("rows", [1, 2, 3, 5])
def test_greedy_tokens_equal_fp32_argmax_even_on_near_ties(rows):
    """greedy_tokens (approximate int8/bf16 head + exact recheck of the survivors) returns the
    fp32 head's argmax. Near-ties the approximation cannot separate are planted on purpose:
    rows of the head copied with a 1e-4 relative nudge, so the approximate pass ranks them at
    random and only the exact pass can tell."""
    torch.manual_seed(3)
    model = HybridLM(toy_cfg(vocab_size=8192, d_model=64, n_heads=4, mtp_depths=1)).eval()
    assert model.cfg.vocab_size >= model.FAST_ARGMAX_MIN_VOCAB
    w = model.head.weight
    with torch.no_grad():
        w.normal_(0, 0.05)
    hidden = torch.randn(40, rows, 64)
    mismatches = planted = 0
    for h in hidden:
        exact = model.logits(h).argmax(-1)
        with torch.no_grad():  # plant a rival for each row's winner, above or below it
            for i, t in enumerate(exact.tolist()):
                rival = (t * 7 + 11 + i) % 8192
                w[rival] = w[t] * (1 + 1e-4 * (1 if i % 2 else -1))
                planted += 1
        exact = model.logits(h).argmax(-1)
        got = model.greedy_tokens(h[None])[0]
        mismatches += int((got != exact).sum())
    assert planted >= 40 and mismatches == 0
    # the approximate pass is in use (not a silent fallback to the fp32 head), and its error
    # bound holds for every token of every row
    rows = model.norm(hidden.reshape(-1, 64))
    acc, factor, bound = model._int8_scores(rows)
    approx = acc.double() * factor.double()[:, None]
    exact = model.logits(hidden.reshape(-1, 64)).double()
    slack = bound.double()[:, None] - (exact - approx).abs()
    assert slack.min() >= 0 and (bound < 0.1 * exact.abs().amax(-1).float()).all()
    # more near-ties than the top-4 shortcut holds: the full threshold pass decides
    h = hidden[0]
    t = int(model.logits(h[:1]).argmax())
    with torch.no_grad():
        for j in range(1, 7):
            w[(t + 101 * j) % 8192] = w[t] * (1 + 1e-5 * (j - 3.5))
    acc, factor, bound = model._int8_scores(model.norm(h[:1]))
    window = 2 * bound / factor
    assert int((acc[0] >= acc[0].max() - window[0]).sum()) > 4
    assert torch.equal(model.greedy_tokens(h[None])[0], model.logits(h).argmax(-1))
    # weights changing in place (an optimizer step) are picked up
    with torch.no_grad():
        w.mul_(-1)
    h = hidden[0]
    assert torch.equal(model.greedy_tokens(h[None])[0], model.logits(h).argmax(-1))


def test_onednn_int8_scores_equal_int_mm_exactly():
    """The several-rows path of the int8 scores (oneDNN's u8 x s8 linear on the prepacked head)
    sums exactly what torch._int_mm sums, including the extreme rows that would saturate a
    pairwise int16 accumulation; where the op is missing or inexact the model does not use it."""
    from synth.model.hybrid import OneDNNInt8

    torch.manual_seed(6)
    q = torch.randint(-127, 128, (8192, 64), dtype=torch.int8)
    q[:64] = 127
    mm = OneDNNInt8.exact_or_none(q)
    if mm is None:
        pytest.skip("oneDNN's int8 linear is missing or not exact on this CPU")
    x = torch.randint(-127, 128, (6, 64)).float()
    x[0], x[1] = 127, -127
    for n in (2, 3, 6):
        assert torch.equal(mm(x[:n]), torch._int_mm(x[:n].to(torch.int8), q.T).float())
    model = HybridLM(toy_cfg(vocab_size=8192, d_model=64, n_heads=4, mtp_depths=1)).eval()
    rows = model.norm(torch.randn(4, 64))
    acc, _, _ = model._int8_scores(rows)
    assert model._derived["int8_head_onednn"][1] is not None
    one = torch.cat([model._int8_scores(r[None])[0] for r in rows]).float()
    assert torch.equal(acc.float(), one)


def test_draft_tokens_come_from_the_counted_vocabulary():
    torch.manual_seed(4)
    model = HybridLM(toy_cfg(vocab_size=512, mtp_depths=1)).eval()
    hidden = torch.randn(6, 32)
    # nothing counted: the drafter ranks the whole vocabulary
    assert torch.equal(model.draft_tokens(hidden), model.logits(hidden).argmax(-1))
    model.count_tokens(torch.tensor([[5, 9, 9, -100], [300, 5, 5, -100]]))
    assert model.token_counts[5] == 3 and model.token_counts[9] == 2 and model.token_counts.sum() == 6
    logits = model.logits(hidden)
    allowed = torch.tensor([5, 9, 300])
    expect = allowed[logits[:, allowed].argmax(-1)]
    assert torch.equal(model.draft_tokens(hidden), expect)
    # DRAFT_VOCAB caps the sub-vocabulary at the most frequent tokens
    model.DRAFT_VOCAB = 1
    assert set(model.draft_tokens(hidden).tolist()) == {5}


# ---- 3. causality ---------------------------------------------------------------------------


def test_causality_main_and_mtp():
    """Perturbing token t changes nothing before t in the main logits, and nothing before t-k
    in MTP depth k (position s reads tokens <= s+k); position t-k of depth k does change."""
    model = fp64_model(mtp_depths=2)
    ids = torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(4))
    t = 9
    other = ids.clone()
    other[0, t] = (ids[0, t] + 1) % 64
    a, b = model(ids), model(other)
    close(a.logits[:, :t], b.logits[:, :t], 0)
    assert (a.logits[:, t] - b.logits[:, t]).abs().max() > 1e-6
    for k, (la, lb) in enumerate(zip(a.mtp_logits, b.mtp_logits), start=1):
        close(la[:, :t - k], lb[:, :t - k], 0)
        assert (la[:, t - k] - lb[:, t - k]).abs().max() > 1e-6


# ---- 4 and 5. mixture of experts ------------------------------------------------------------


@pytest.mark.parametrize("latent,shared", [(0, True), (12, True), (12, False)])
def test_sparse_moe_equals_dense_reference(latent, shared):
    torch.manual_seed(5)
    moe = MoE(toy_cfg(moe_latent=latent, shared_expert=shared, n_experts=6, top_k=3)).double()
    x = torch.randn(3, 10, 32, dtype=torch.float64)
    y, aux = moe(x)
    close(y, moe_dense_reference(moe, x))
    assert aux.item() > 0
    with torch.no_grad():  # decoding a few tokens takes the stacked all-experts path
        few = x[:1, :5]
        close(moe(few)[0], moe_dense_reference(moe, few))
        assert "stacked" in moe._derived
        for e in moe.experts:  # an in-place weight update reaches the stacked copy
            e.w_out.weight.mul_(1.5)
        close(moe(few)[0], moe_dense_reference(moe, few))


def test_selection_bias_picks_but_never_gates():
    torch.manual_seed(6)
    moe = MoE(toy_cfg(n_experts=6, top_k=2)).double()
    x = torch.randn(40, 32, dtype=torch.float64)
    scores = torch.sigmoid(x @ moe.router.weight.T)  # computed here, not by route()
    _, idx_free, _ = moe.route(x)
    target = int(torch.bincount(idx_free.flatten(), minlength=6).argmin())
    moe.bias[target] = 10.0
    _, idx, gates = moe.route(x)
    assert (idx == target).any(-1).all() and not torch.equal(idx, idx_free)
    picked = scores.gather(-1, idx)
    close(gates, picked / picked.sum(-1, keepdim=True))
    y, aux = moe(x[None])
    (y.sum() + aux).backward()
    assert not moe.bias.requires_grad and moe.bias.grad is None
    assert "bias" not in dict(moe.named_parameters())
    assert moe.router.weight.grad is not None


def test_update_router_bias_moves_toward_underloaded():
    model = fp64_model(pattern="E", n_experts=4, top_k=1).train()
    moe = model.layers[0].mixer
    moe.bias.copy_(torch.tensor([5.0, 0, 0, 0]))  # every token goes to expert 0
    model(torch.randint(0, 64, (2, 16)))
    assert moe.load.tolist() == [32, 0, 0, 0]
    model.update_router_bias()
    rate = model.cfg.bias_update_rate
    close(moe.bias, torch.tensor([5.0 - rate, rate, rate, rate], dtype=torch.float64))
    assert moe.load.sum() == 0
    model.eval()(torch.randint(0, 64, (2, 16)))
    assert moe.load.sum() == 0  # evaluation does not count load


# ---- 7 and 8. initial loss, overfitting -------------------------------------------------------


def test_initial_loss_is_log_vocab():
    torch.manual_seed(7)
    cfg = CONFIGS["tiny"]
    model = HybridLM(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 65))
    with torch.no_grad():
        out = model(ids[:, :-1], ids[:, 1:])
    assert abs(out.ce_loss.item() - math.log(cfg.vocab_size)) < 0.15
    assert abs(out.mtp_loss.item() - math.log(cfg.vocab_size)) < 0.15
    close(out.loss, out.ce_loss + cfg.mtp_weight * out.mtp_loss + out.aux_loss, 1e-6)


def test_fused_loss_equals_plain_cross_entropy():
    """The chunked linear+cross-entropy (loss and gradients) against F.cross_entropy on the
    materialized logits, main and MTP, with ignored targets."""
    F = torch.nn.functional
    model = fp64_model(mtp_depths=2)
    ids = torch.randint(0, 64, (2, 13), generator=torch.Generator().manual_seed(8))
    x, y = ids[:, :-1], ids[:, 1:].clone()
    y[0, 3] = -100
    out = model(x, y)
    ce = F.cross_entropy(out.logits.flatten(0, 1), y.flatten())
    mtp = torch.stack([F.cross_entropy(lg.flatten(0, 1),
                                       F.pad(y[:, k:], (0, k), value=-100).flatten())
                       for k, lg in enumerate(out.mtp_logits, start=1)]).mean()
    close(out.ce_loss, ce)
    close(out.mtp_loss, mtp)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = torch.autograd.grad(out.loss, params, retain_graph=True)
    plain = torch.autograd.grad(ce + model.cfg.mtp_weight * mtp + out.aux_loss, params)
    for a, b in zip(fused, plain):
        close(a, b)


def test_bf16_autocast_training_step():
    """The trainer's mixed precision: matmuls in bf16, the SSM scan, router and softmax in fp32;
    the loss stays close to fp32's and every gradient is finite."""
    torch.manual_seed(13)
    model = HybridLM(toy_cfg(moe_latent=12))
    ids = torch.randint(0, 64, (2, 17))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids[:, :-1], ids[:, 1:])
    out.loss.backward()
    assert out.loss.dtype == torch.float32
    assert abs(out.loss.item() - model(ids[:, :-1], ids[:, 1:]).loss.item()) < 0.05
    assert out.logits.dtype == torch.bfloat16  # read after the block: still forward's autocast
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 20 and all(torch.isfinite(g).all() for g in grads)


def test_loss_mask_and_ignore_index_agree():
    model = fp64_model()
    ids = torch.randint(0, 64, (2, 13), generator=torch.Generator().manual_seed(8))
    x, y = ids[:, :-1], ids[:, 1:]
    mask = torch.ones_like(y)
    mask[:, :5] = 0
    a = model(x, y, loss_mask=mask)
    b = model(x, y.masked_fill(mask == 0, -100))
    close(a.loss, b.loss)
    assert abs(a.ce_loss.item() - model(x, y).ce_loss.item()) > 1e-6


@pytest.fixture(scope="module")
def overfit():
    """A tiny model with two MTP depths trained on one batch of two random sequences."""
    torch.manual_seed(9)
    model = HybridLM(toy_cfg(init_std=0.02, mtp_depths=2)).train()
    seqs = torch.randint(0, 64, (2, 49))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(150):
        out = model(seqs[:, :-1], seqs[:, 1:])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        model.update_router_bias()
        losses.append((out.ce_loss.item(), out.mtp_loss.item()))
    return model.eval(), seqs, losses


def test_overfits_one_batch(overfit):
    _, _, losses = overfit
    ce, mtp = losses[-1]
    assert losses[0][0] > 3.5 and ce < 0.5 and mtp < 1.0


# ---- 6. speculative decoding ------------------------------------------------------------------


@pytest.mark.parametrize("pattern,depths,max_drafts", [
    ("M*EM-E", 1, None), ("M*EM-E", 2, None), ("ME-M", 2, None),
    ("M*EM-E", 1, 3), ("M*EM-E", 2, 4),  # drafts past the depths chain the last module
])
def test_speculative_equals_greedy_random_init(pattern, depths, max_drafts):
    model = fp64_model(seed=10, pattern=pattern, mtp_depths=depths)
    drafted = accepted = 0
    for n, prompt_len in enumerate([1, 5, 13]):
        prompt = torch.randint(0, 64, (prompt_len,), generator=torch.Generator().manual_seed(n))
        prompt = prompt.tolist()
        plain, _ = model.generate(prompt, 24)
        spec, stats = model.generate(prompt, 24, speculative=True, max_drafts=max_drafts)
        assert spec == plain
        drafted, accepted = drafted + stats["drafted"], accepted + stats["accepted"]
    assert drafted > 0 and accepted < drafted  # rejections happened (and were rolled back)


@pytest.mark.parametrize("max_drafts", [None, 1, 5])
def test_speculative_equals_greedy_trained(overfit, max_drafts):
    model, seqs, _ = overfit
    model = copy.deepcopy(model).double()
    drafted = accepted = 0
    for row, prompt_len in [(0, 6), (1, 3), (1, 20)]:
        prompt = seqs[row, :prompt_len].tolist()
        plain, plain_stats = model.generate(prompt, 40)
        spec, stats = model.generate(prompt, 40, speculative=True, max_drafts=max_drafts)
        assert spec == plain
        assert stats["forward_calls"] < plain_stats["forward_calls"]
        drafted, accepted = drafted + stats["drafted"], accepted + stats["accepted"]
    assert accepted > 0.6 * drafted  # the trained MTP heads draft the memorized text
    if max_drafts is None:  # one draft per depth: ~3 tokens per main forward on memorized text
        assert stats["forward_calls"] * 2 < plain_stats["forward_calls"]


def test_speculative_float32_with_fast_heads(overfit):
    """The production path: float32, the int8 greedy head and the counted draft vocabulary
    (the fp64 tests above take the exact fallbacks)."""
    model, seqs, _ = overfit
    model = copy.deepcopy(model)
    model.FAST_ARGMAX_MIN_VOCAB = 1  # the toy vocabulary is small; force the int8 path
    model.count_tokens(seqs)
    for row, prompt_len in [(0, 6), (1, 20)]:
        prompt = seqs[row, :prompt_len].tolist()
        plain, _ = model.generate(prompt, 40)
        spec, stats = model.generate(prompt, 40, speculative=True)
        assert spec == plain and stats["accepted"] > 0
    assert "int8_head" in model._derived and model._derived["draft_vocab"][1] is not None


def test_generate_stops_and_samples():
    model = fp64_model(seed=11)
    prompt = [3, 1, 4, 1, 5]
    greedy, _ = model.generate(prompt, 10)
    assert len(greedy) == 10
    for speculative in (False, True):
        out, _ = model.generate(prompt, 10, eos_id=greedy[2], speculative=speculative)
        assert out == greedy[:greedy.index(greedy[2]) + 1]
    nucleus_of_one, _ = model.generate(prompt, 10, temperature=1.0, top_p=1e-9)
    assert nucleus_of_one == greedy
    draws = [model.generate(prompt, 10, temperature=1.0,
                            generator=torch.Generator().manual_seed(s))[0] for s in (0, 0, 1)]
    assert draws[0] == draws[1] and draws[0] != draws[2]
    with pytest.raises(SynthError, match="temperature 0"):
        model.generate(prompt, 5, temperature=0.7, speculative=True)
    torch.set_num_threads(2)  # generate runs on one thread and gives the setting back
    model.train().generate(prompt, 2)
    assert torch.get_num_threads() == 2 and model.training
    torch.set_num_threads(1)


# ---- 9. config ------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides,message", [
    (dict(pattern="M*X"), "unknown layer chars ['X']"),
    (dict(pattern=""), "pattern is empty"),
    (dict(n_heads=4, n_kv_heads=3), "not a multiple of n_kv_heads"),
    (dict(top_k=5, n_experts=4), "top_k 5 > n_experts 4"),
    (dict(d_model=30), "not divisible by n_heads"),
    (dict(mamba_head_dim=24), "not divisible by mamba_head_dim"),
    (dict(d_model=20, rope=True), "even head dim"),
    (dict(mtp_depths=-1), "mtp_depths must be >= 0"),
    (dict(chunk_size=0), "chunk_size must be >= 1"),
])
def test_config_errors(overrides, message):
    with pytest.raises(SynthError, match="bad model config") as err:
        toy_cfg(**overrides).validate()
    assert message in str(err.value)
    with pytest.raises(SynthError):
        HybridLM(toy_cfg(**overrides))


def test_config_roundtrip_and_names():
    for cfg in CONFIGS.values():
        assert HybridConfig.from_dict(cfg.to_dict()) == cfg.validate()
    assert config_by_name("tiny") is CONFIGS["tiny"]
    with pytest.raises(SynthError, match=r"\['small', 'tiny'\]"):
        config_by_name("huge")
    with pytest.raises(SynthError, match="d_modle"):
        HybridConfig.from_dict({"d_modle": 64})
    with pytest.raises(SynthError, match="'d_model' must be int"):
        HybridConfig.from_dict({"d_model": "64"})


def test_param_counts():
    tiny = HybridLM(CONFIGS["tiny"]).num_params()
    small = HybridLM(CONFIGS["small"]).num_params()
    assert 5e6 < tiny < 10e6 and 3.5 < small / tiny < 5


# ---- NVFP4 hook -------------------------------------------------------------------------------


def test_nvfp4_conversion_keeps_sensitive_layers():
    pytest.importorskip("synth.model.nvfp4")
    torch.manual_seed(12)
    plain = HybridLM(toy_cfg())
    torch.manual_seed(12)
    model = HybridLM(toy_cfg(nvfp4=True, nvfp4_keep_last=1))
    assert model.state_dict().keys() == plain.state_dict().keys()
    last = len(model.cfg.pattern) - 1
    converted = kept = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        sensitive = (name == "head" or name.startswith("mtp.") or "router" in name
                     or name.startswith(f"layers.{last}."))
        if sensitive:
            assert type(module) is torch.nn.Linear, name
            kept += 1
        else:
            assert type(module) is not torch.nn.Linear, name
            converted += 1
    assert converted and kept
    ids = torch.randint(0, 64, (2, 12))
    out = model(ids[:, :-1], ids[:, 1:])
    assert torch.isfinite(out.loss)
