"""Errors that kvcache raises for caller mistakes.

Every message names the thing that is wrong and what to do about it. Internal invariants
are checked with ``assert`` instead: an ``AssertionError`` from kvcache is a bug in kvcache.
"""


class KVCacheError(Exception):
    """Base class of every error kvcache raises for a caller's mistake."""


class InvalidArgumentError(KVCacheError, ValueError):
    """An argument is not one kvcache can use: a block count, a layer id, a token count. A
    ``ValueError`` too, as these were before they had a class of their own."""


class SpecError(KVCacheError, ValueError):
    """A model cache spec cannot be built: unknown preset, bad config, bad block_tokens."""


class PoolExhaustedError(KVCacheError):
    """The pool has fewer free blocks than asked for; nothing was allocated."""


class UnknownAgentError(KVCacheError, KeyError):
    """The agent has nothing stored in the pool (never stored, or freed)."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0])


class BlockOwnershipError(KVCacheError, ValueError):
    """A block is not allocated, or not to the agent or layer it is used for."""


class CacheMismatchError(KVCacheError, ValueError):
    """An mlx-lm cache does not fit the pool's model cache spec."""


class UnknownStrategyError(KVCacheError, ValueError):
    """No restore strategy has that name."""


class AgentOnLoanError(KVCacheError):
    """A zero-copy restored cache of the agent advanced without being stored back, or (for
    another zero-copy restore) is still alive and not stored back."""
