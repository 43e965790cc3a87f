"""PyTorch fundamentals: tensors, autograd, modules, training loops, worked examples, a
minimal GPT and the patterns of RL post-training. ``python -m snippets.pytorch`` runs every
demo; each demo prints what the reader should see and returns its key numbers."""

from snippets.pytorch.autograd import autograd_demo
from snippets.pytorch.gpt_demo import gpt_example
from snippets.pytorch.kv_cache import kv_cache_demo
from snippets.pytorch.mlp import mlp_classification
from snippets.pytorch.modules import module_demo
from snippets.pytorch.regression import linear_regression_manual, linear_regression_module
from snippets.pytorch.rl_patterns import rl_patterns
from snippets.pytorch.tensors import tensor_basics, tensor_operations
from snippets.pytorch.training import training_loop_demo

__all__ = [
    "DEMOS",
    "autograd_demo",
    "gpt_example",
    "kv_cache_demo",
    "linear_regression_manual",
    "linear_regression_module",
    "mlp_classification",
    "module_demo",
    "rl_patterns",
    "tensor_basics",
    "tensor_operations",
    "training_loop_demo",
]

DEMOS = (
    tensor_basics,
    tensor_operations,
    autograd_demo,
    module_demo,
    training_loop_demo,
    linear_regression_manual,
    linear_regression_module,
    mlp_classification,
    gpt_example,
    kv_cache_demo,
    rl_patterns,
)
"""Every demo, in reading order."""
