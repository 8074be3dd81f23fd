"""Loans: zero-copy restored caches that share an agent's block runs, and whether they moved.

A cache restored zero-copy holds the pool's own run buffers, and decoding writes into them
in place (a sliding ring overwrites stored tokens). So the pool must not hand the agent's
data out again once such a cache has written without being stored back. Each lent layer is
watched through the cache object's attribute dict (``vars(cache)``), which outlives the
cache object: a cache that advanced and was then dropped is still seen to have advanced.
A loan whose caches are all gone and never moved is forgotten.

Not locked by itself: the engine calls it under the agent's lock.
"""

import weakref

from .errors import AgentOnLoanError


class Loan:
    """One restored cache list; ``watched``: layer_id -> (run, ring_index) it was lent."""

    def __init__(self, cache, total_tokens, watched):
        self.total_tokens = total_tokens
        self._refs = [weakref.ref(cache[i]) for i in watched]
        self._watched = {i: (vars(cache[i]), run, ring) for i, (run, ring) in watched.items()}
        self.state_ids = {id(state) for state, _, _ in self._watched.values()}  # alive: held above

    def moved_to(self, current_runs):
        """The token count a watched cache moved to, or None while every one is as lent."""
        for layer_id, (state, run, ring_index) in self._watched.items():
            if current_runs.get(layer_id) is not run:
                continue  # the agent no longer stores this run: nothing to protect
            if (
                state["keys"] is not run.keys
                or state["values"] is not run.values
                or state["offset"] != self.total_tokens
                or (ring_index is not None and state.get("_idx") != ring_index)
            ):
                return state["offset"]
        return None

    def covers(self, cache):
        """True if a layer of ``cache`` is one this loan watches (O(1) per layer)."""
        return any(id(vars(c)) in self.state_ids for c in cache)

    def is_dropped(self):
        return all(ref() is None for ref in self._refs)


class LoanBook:
    """The live loans of every agent."""

    def __init__(self):
        self._loans = {}  # agent_id -> [Loan]

    def lent_layers(self, agent_id, cache):
        """The indices of the layers of ``cache`` lent from ``agent_id`` (O(1) per layer)."""
        loans = self._loans.get(agent_id)
        if not loans:
            return set()
        watched = set().union(*(loan.state_ids for loan in loans))
        return {i for i, c in enumerate(cache) if id(vars(c)) in watched}

    def lend(self, agent_id, cache, total_tokens, watched):
        if watched:
            self._loans.setdefault(agent_id, []).append(Loan(cache, total_tokens, watched))

    def check(self, agent_id, current_runs):
        """Raise ``AgentOnLoanError`` if a cache lent from ``agent_id`` moved without being stored."""
        kept = []
        for loan in self._loans.get(agent_id, ()):
            moved_to = loan.moved_to(current_runs)
            if moved_to is not None:
                raise AgentOnLoanError(
                    f"agent {agent_id!r} was restored zero-copy and that cache moved on ({loan.total_tokens} -> "
                    f"{moved_to} tokens) without being stored: store(agent_id, cache) it first, or free_agent"
                )
            if not loan.is_dropped():
                kept.append(loan)
        self._loans[agent_id] = kept

    def restamp(self, agent_id, cache, total_tokens, adopted):
        """After ``cache`` was stored: it is watched from its new state on, for the runs it kept."""
        others = [loan for loan in self._loans.get(agent_id, ()) if not loan.covers(cache)]
        self._loans[agent_id] = others
        self.lend(agent_id, cache, total_tokens, adopted)

    def forget(self, agent_id):
        self._loans.pop(agent_id, None)
