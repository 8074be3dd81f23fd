"""kvcache: a block-pool KV cache for MLX language models.

Agents' mlx-lm caches are parked in a pool of fixed-size blocks (``BlockPool``) and restored
when the agent speaks again (``BlockPoolBatchEngine``); ``ModelCacheSpec`` says how big
everything is.
"""

from .agent_blocks import AgentBlocks
from .engine import BlockPoolBatchEngine
from .errors import (
    AgentOnLoanError,
    BlockOwnershipError,
    CacheMismatchError,
    KVCacheError,
    PoolExhaustedError,
    SpecError,
    UnknownAgentError,
    UnknownStrategyError,
)
from .pool import Block, BlockPool, BlockRun
from .restore import STRATEGIES
from .spec import GLOBAL, SLIDING, LayerSpec, ModelCacheSpec
from .synthetic import random_cache, scattered_copy

__all__ = [
    "AgentBlocks", "AgentOnLoanError", "Block", "BlockOwnershipError", "BlockPool",
    "BlockPoolBatchEngine", "BlockRun", "CacheMismatchError", "GLOBAL", "KVCacheError",
    "LayerSpec", "ModelCacheSpec", "PoolExhaustedError", "SLIDING", "STRATEGIES", "SpecError",
    "UnknownAgentError", "UnknownStrategyError", "random_cache", "scattered_copy",
]
