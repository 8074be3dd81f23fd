"""kvcache: a block-pool KV cache for MLX language models.

Agents' mlx-lm caches are parked in a pool of fixed-size blocks (``BlockPool``) and restored
when the agent speaks again (``BlockPoolBatchEngine``); ``ModelCacheSpec`` says how big
everything is. ``kvcache.synthetic`` holds test and benchmark helpers (caches of random
data, block-per-run tables), not part of the cache's API.
"""

try:
    import mlx.core  # noqa: F401  (on Linux MLX needs a backend, which is one of kvcache's extras)
except ImportError as error:
    raise ImportError(
        f"kvcache: MLX has no backend here ({error}): install kvcache[cpu] (Linux CPU) or kvcache[cuda13] "
        "(NVIDIA, CUDA 13); on macOS plain kvcache has Metal"
    ) from error

from .agent_blocks import AgentBlocks
from .engine import BlockPoolBatchEngine
from .errors import (
    AgentOnLoanError,
    BlockOwnershipError,
    CacheMismatchError,
    InvalidArgumentError,
    KVCacheError,
    PoolExhaustedError,
    SpecError,
    UnknownAgentError,
    UnknownStrategyError,
)
from .pool import Block, BlockPool, BlockRun
from .restore import STRATEGIES
from .spec import GLOBAL, SLIDING, LayerSpec, ModelCacheSpec

__all__ = [
    "AgentBlocks", "AgentOnLoanError", "Block", "BlockOwnershipError", "BlockPool",
    "BlockPoolBatchEngine", "BlockRun", "CacheMismatchError", "GLOBAL", "InvalidArgumentError", "KVCacheError",
    "LayerSpec", "ModelCacheSpec", "PoolExhaustedError", "SLIDING", "STRATEGIES", "SpecError",
    "UnknownAgentError", "UnknownStrategyError",
]
