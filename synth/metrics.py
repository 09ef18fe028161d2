"""pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", section 2.1).

For one prompt with n samples of which c are correct, pass@k is the probability that at
least one of k samples drawn without replacement from the n is correct:

    pass@k = 1 - C(n - c, k) / C(n, k)

The binomials overflow floats for large n, so the ratio is computed as the running product
prod_{i = n-c+1}^{n} (1 - k / i), exactly as in the paper's numpy snippet, in pure Python.

A prompt with fewer than k samples has no unbiased estimate of pass@k, so
`pass_at_k_table` leaves it out of that k's average (and leaves the key out entirely when no
prompt has k samples) rather than reporting a biased number.
"""

from __future__ import annotations

from collections import defaultdict

from typing import Iterable

__all__ = ["pass_at_k", "pass_at_k_from_counts", "pass_at_k_table"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one prompt: n samples, c of them correct, budget k (1 <= k <= n)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    miss = 1.0  # C(n-c, k) / C(n, k)
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def pass_at_k_table(
    prompt_ids: list[str], correct: list[bool], ks: tuple[int, ...] = (1, 4, 8)
) -> dict[str, float]:
    """Mean pass@k over prompts, as {"pass@1": .., "pass@4": ..}.

    `prompt_ids[i]` names the prompt sample i answers; `correct[i]` says whether it passed.
    For each k only the prompts with at least k samples count; a k that no prompt reaches
    is absent from the result. Keys follow the order of `ks`.
    """
    if len(prompt_ids) != len(correct):
        raise ValueError(f"{len(prompt_ids)} prompt ids but {len(correct)} verdicts")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # prompt -> [n, c]
    for pid, ok in zip(prompt_ids, correct):
        counts[pid][0] += 1
        counts[pid][1] += bool(ok)
    return pass_at_k_from_counts([(n, c) for n, c in counts.values()], ks)


def pass_at_k_from_counts(counts: Iterable[tuple[int, int]], ks: tuple[int, ...] = (1, 4, 8)
                          ) -> dict[str, float]:
    """`pass_at_k_table` from per-prompt (n samples, c correct) pairs, when they are already
    counted (e.g. by a group-by over shards). Same rules: a prompt counts for k when n >= k."""
    pairs = [(int(n), int(c)) for n, c in counts]
    table: dict[str, float] = {}
    for k in ks:
        scores = [pass_at_k(n, c, k) for n, c in pairs if n >= k]
        if scores:
            table[f"pass@{k}"] = sum(scores) / len(scores)
    return table
