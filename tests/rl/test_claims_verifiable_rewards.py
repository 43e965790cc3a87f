"""Claims of the verifiable-rewards page: with binary rewards a group carries signal only if it
is mixed, which for success probability p happens with probability 1 − p^G − (1 − p)^G; the
RLOO and GRPO advantages of k successes out of G have closed forms; Tülu 3's reward α·1[correct]
with coefficient β is the 0/1 objective with coefficient β/α; and the page's own inline checkers
(run from the page's text) parse numbers strictly, compare them numerically, refuse an empty
test list and score too-deeply-nested programs 0."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import re
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages, rloo_advantages


def test_informative_group_probability_by_enumeration() -> None:
    group = 6
    outcomes = torch.tensor(list(itertools.product([0.0, 1.0], repeat=group)))  # (2^G, G)
    informative = (grpo_advantages(outcomes).abs().sum(dim=1) > 0).double()  # (2^G,)
    successes = outcomes.sum(dim=1).double()
    for p in (0.05, 0.3, 0.5, 0.95):
        prob = p**successes * (1 - p) ** (group - successes)  # P(outcome)
        assert_close(prob.sum(), torch.tensor(1.0).double())
        expected = 1 - p**group - (1 - p) ** group
        assert math.isclose(float((prob * informative).sum()), expected, rel_tol=1e-12)


def test_rloo_binary_closed_form() -> None:
    group = 8
    for k in range(1, group):
        rewards = torch.tensor([[1.0] * k + [0.0] * (group - k)], dtype=torch.float64)
        adv = rloo_advantages(rewards)[0]
        assert_close(adv[:k], torch.full((k,), (group - k) / (group - 1)).double())
        assert_close(adv[k:], torch.full((group - k,), -k / (group - 1)).double())


def test_grpo_binary_closed_form_and_rare_success_gets_large_advantage() -> None:
    group = 8
    values = []
    for k in range(1, group):
        rewards = torch.tensor([[1.0] * k + [0.0] * (group - k)], dtype=torch.float64)
        adv = grpo_advantages(rewards, eps=1e-12)[0]
        std = math.sqrt(k * (group - k) / (group * (group - 1)))
        assert math.isclose(float(adv[0]), (1 - k / group) / std, rel_tol=1e-9)
        assert math.isclose(float(adv[-1]), (0 - k / group) / std, rel_tol=1e-9)
        values.append(float(adv[0]))
    # the rarer the success, the larger the push on the successful sample
    assert all(a > b for a, b in itertools.pairwise(values))


def test_tulu_alpha_reward_is_the_binary_objective_with_beta_over_alpha() -> None:
    # one prompt, a categorical "policy" over 5 responses, two of them verifiably correct
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    ref = torch.softmax(torch.tensor([0.3, 1.0, -0.5, 0.2, 0.0], dtype=torch.float64), 0)
    alpha, beta = 10.0, 0.05

    def objective(pi: torch.Tensor, scale: float, coef: float) -> torch.Tensor:
        return (pi * scale * correct).sum() - coef * (pi * (pi / ref).log()).sum()

    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        pi = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
        assert_close(objective(pi, alpha, beta), alpha * objective(pi, 1.0, beta / alpha))

    # hence the same maximiser: π* ∝ π_ref · exp(reward / coefficient)
    def optimum(scale: float, coef: float) -> torch.Tensor:
        return torch.softmax(ref.log() + scale * correct / coef, 0)

    assert_close(optimum(alpha, beta), optimum(1.0, beta / alpha))
    # and it is the maximiser: any perturbation lowers the objective
    best = objective(optimum(1.0, beta / alpha), 1.0, beta / alpha)
    for _ in range(5):
        other = torch.softmax(
            optimum(1.0, beta / alpha).log()
            + 0.1 * torch.randn(5, generator=g, dtype=torch.float64),
            0,
        )
        assert objective(other, 1.0, beta / alpha) < best


# --- the page's inline checkers, executed from the page itself --------------------------------

PAGE = Path(__file__).resolve().parents[2] / "docs" / "rl" / "verifiable-rewards.md"


def _page_namespace(defines: str) -> dict:
    """Run the page's python fence that defines ``defines`` (its prints are discarded)."""
    fences = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    (code,) = [f for f in fences if f"def {defines}(" in f]
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace


def test_page_extract_answer_is_strict_and_numeric() -> None:
    ns = _page_namespace("extract_answer")
    reward = ns["exact_match_reward"]
    for text in [
        "#### 1200",
        "#### 1,200",
        "####1200",
        "#### 1200.0",
        "#### 1200.00  ",
        "x\n#### 1200",
    ]:
        assert reward(text, "1200") == 1.0, text
    for text in [
        "#### 1,2,0,0",
        "#### ,1200",
        "#### 12,00",
        "#### 1200,",
        "1200",
        "#### 12",
        "#### 1200 pens",
    ]:
        assert reward(text, "1200") == 0.0, text
    assert ns["extract_answer"]("#### 1,2,0,0") is None
    assert ns["extract_answer"]("#### -3.5") == ns["Decimal"]("-3.5")
    assert reward("#### 12\n#### 1200", "1200") == 1.0  # the last '####' line is the answer


def test_page_unit_test_reward_edge_cases() -> None:
    ns = _page_namespace("unit_test_reward")
    reward = ns["unit_test_reward"]
    with pytest.raises(ValueError, match="tests must be a non-empty"):
        reward("2*x + 1", [])
    deep = "+".join(["x"] * 5000)
    with pytest.raises(RecursionError):  # what the checker has to catch
        compile(deep, "<deep>", "eval")
    assert reward(deep, [(1, 5000)]) == 0.0
    assert reward("x" + "+x" * 500, [(1, 501)]) == 1.0  # moderately deep is still evaluated
    assert reward("2*x + 1", [(0, 1), (1, 3)]) == 1.0
    assert reward("x ** 2", [(0, 0)]) == 0.0  # a refused operator scores 0, never runs
