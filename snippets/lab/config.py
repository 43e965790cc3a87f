"""Settings of every lab stage: one typed dataclass per stage, checked when it is made.

A bad value (group size 1 for GRPO, a negative β, an unknown algorithm, ``steps <= 0``)
raises ``ValueError`` naming the field, before any model is built or any step is taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from snippets._checks import check_int
from snippets.rl import AGGREGATIONS

__all__ = [
    "GROUP_ALGOS",
    "PREF_ALGOS",
    "RL_ALGOS",
    "ModelConfig",
    "PrefConfig",
    "RLConfig",
    "RMConfig",
    "SFTConfig",
]

RL_ALGOS = ("reinforce", "rloo", "reinforce_pp", "ppo", "grpo")
GROUP_ALGOS = ("rloo", "grpo")  # algorithms whose baseline needs G >= 2 siblings
PREF_ALGOS = ("dpo", "ipo")
TUNED_PREF_BETA = {"dpo": 2.0, "ipo": 0.25}  # from `python -m snippets.lab pref_sweep`


def _positive_int(obj: object, *names: str) -> None:
    for name in names:
        check_int(name, getattr(obj, name))


def _real(obj: object, name: str, low: float, high: float = math.inf, strict: bool = False):
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or value > high or (strict and value == low):
        bound = f"> {low}" if strict else f">= {low}"
        bound += f" and <= {high}" if high < math.inf else ""
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def _seed(obj: object) -> None:
    check_int("seed", obj.seed, low=0)


@dataclass
class ModelConfig:
    """Size of the tiny GPT (vocabulary and context are fixed by the task)."""

    n_layer: int = 2
    """Transformer blocks."""
    n_head: int = 4
    """Attention heads per block."""
    n_embd: int = 64
    """Width of the residual stream; 2 x 64 gives about 0.1M parameters."""

    def __post_init__(self) -> None:
        _positive_int(self, "n_layer", "n_head", "n_embd")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


@dataclass
class SFTConfig:
    """Supervised fine-tuning on noisy demonstrations (loss on answer tokens only)."""

    steps: int = 1500
    """Optimizer steps."""
    batch_size: int = 128
    """Demonstrations per step."""
    lr: float = 3e-3
    """Peak AdamW learning rate (linear warm-up over 50 steps, then constant)."""
    noise: float = 0.6
    """Share of demonstrations that drop every carry; > 0.5 makes greedy SFT plateau."""
    seed: int = 0
    """Seeds the initial weights and the demonstrations."""
    eval_every: int = 50
    """Evaluate held-out exact match (greedy) every this many steps."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Size of the GPT."""

    def __post_init__(self) -> None:
        _positive_int(self, "steps", "batch_size", "eval_every")
        _real(self, "lr", 0.0, strict=True)
        _real(self, "noise", 0.0, 1.0)
        _seed(self)


@dataclass
class RLConfig:
    """Online RL from the SFT checkpoint, one algorithm, budgeted by steps (= samples)."""

    algo: str = "grpo"
    """One of reinforce, rloo, reinforce_pp, ppo, grpo."""
    steps: int = 80
    """Rollout batches; every algorithm sees prompts x group samples per step."""
    prompts: int = 32
    """P: prompts per step."""
    group: int = 8
    """G: samples per prompt (>= 2 for rloo and grpo, whose baselines compare siblings)."""
    lr: float = 2e-4
    """AdamW learning rate of the policy (and of PPO's critic); 1e-3 learns faster at first
    but makes REINFORCE unstable (see the ``*_highlr`` runs)."""
    beta: float = 0.01
    """KL coefficient β >= 0 to the reference (the SFT policy): in the loss for GRPO, in
    the reward for the others."""
    clip_eps: float = 0.2
    """ε of the ratio clip (PPO, GRPO, REINFORCE++)."""
    epochs: int = 1
    """Passes over each rollout batch."""
    minibatches: int = 2
    """Minibatches per pass: optimizer steps per rollout = epochs x minibatches."""
    aggregation: str | None = None
    """Loss aggregation mode of ``snippets.rl.aggregate``; None picks the algorithm's own:
    seq-mean-token-mean for GRPO (its paper), token-mean for PPO and REINFORCE++,
    seq-mean-token-sum (the sequence log-prob) for REINFORCE and RLOO."""
    gamma: float = 1.0
    """Discount γ (PPO's GAE and REINFORCE++'s returns)."""
    lam: float = 0.95
    """GAE λ (PPO)."""
    vf_coef: float = 0.5
    """Weight of the critic loss (PPO)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (evaluation is always greedy)."""
    reward: str = "verifier"
    """'verifier' (exact), 'partial' (per-position credit) or 'model' (learned BT reward)."""
    eval_every: int = 3
    """Evaluate held-out exact match every this many steps (and at the last step)."""
    seed: int = 0
    """Seeds the prompts and the sampling."""

    def __post_init__(self) -> None:
        if self.algo not in RL_ALGOS:
            raise ValueError(f"algo must be one of {list(RL_ALGOS)}, got {self.algo!r}")
        _positive_int(self, "steps", "prompts", "group", "epochs", "minibatches", "eval_every")
        if self.algo in GROUP_ALGOS and self.group < 2:
            raise ValueError(f"group must be >= 2 for {self.algo}, got {self.group}")
        if (self.prompts * self.group) % self.minibatches:
            raise ValueError("minibatches must divide prompts x group")
        _real(self, "lr", 0.0, strict=True)
        _real(self, "beta", 0.0)
        _real(self, "clip_eps", 0.0, strict=True)
        _real(self, "gamma", 0.0, 1.0)
        _real(self, "lam", 0.0, 1.0)
        _real(self, "vf_coef", 0.0)
        _real(self, "temperature", 0.0, strict=True)
        if self.aggregation is not None and self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {list(AGGREGATIONS)}, got {self.aggregation!r}"
            )
        if self.reward not in ("verifier", "partial", "model"):
            raise ValueError(f"reward must be verifier, partial or model, got {self.reward!r}")
        _seed(self)


@dataclass
class RMConfig:
    """Bradley-Terry reward model on pairs sampled from the SFT policy, ranked by the verifier."""

    pair_prompts: int = 2048
    """Prompts sampled to build pairs (one pair per prompt with a correct and a wrong sample)."""
    group: int = 8
    """Samples per prompt when looking for a correct and a wrong response (>= 2)."""
    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 64
    """Pairs per step."""
    lr: float = 1e-3
    """AdamW learning rate."""
    seed: int = 0
    """Seeds the pairs and the head."""

    def __post_init__(self) -> None:
        _positive_int(self, "pair_prompts", "steps", "batch_size")
        _positive_int(self, "group")
        if self.group < 2:
            raise ValueError(f"group must be >= 2 to form a pair, got {self.group}")
        _real(self, "lr", 0.0, strict=True)
        _seed(self)


@dataclass
class PrefConfig:
    """Offline DPO / IPO on pairs sampled once from the SFT policy (the reference)."""

    algo: str = "dpo"
    """dpo or ipo."""
    steps: int = 80
    """Optimizer steps over the fixed pair set."""
    pair_prompts: int = 2560
    """Prompts sampled to build pairs; ``all`` sets steps x 32, the prompts an RL run sees."""
    group: int = 8
    """Samples per prompt (same budget as RL: pair_prompts x group samples)."""
    batch_size: int = 64
    """Pairs per optimizer step."""
    lr: float = 1e-4
    """AdamW learning rate (1e-3 collapses both losses here: see the tuning sweep)."""
    beta: float | None = None
    """β > 0: DPO's inverse temperature; IPO's target margin is 1 / (2β). None picks the
    value tuned on this task (``pref_sweep``): 2.0 for DPO, 0.25 for IPO."""
    eval_every: int = 3
    """Evaluate held-out exact match every this many steps."""
    seed: int = 0
    """Seeds the pairs and the batches."""

    def __post_init__(self) -> None:
        if self.algo not in PREF_ALGOS:
            raise ValueError(f"algo must be one of {list(PREF_ALGOS)}, got {self.algo!r}")
        _positive_int(self, "steps", "pair_prompts", "group", "batch_size", "eval_every")
        if self.group < 2:
            raise ValueError(f"group must be >= 2 to form a pair, got {self.group}")
        _real(self, "lr", 0.0, strict=True)
        if self.beta is None:
            self.beta = TUNED_PREF_BETA[self.algo]
        _real(self, "beta", 0.0, strict=True)
        _seed(self)
