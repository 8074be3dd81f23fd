"""Loans: zero-copy restored caches that share an agent's block runs, and whether they moved.

A cache restored zero-copy holds the pool's own run arrays, and decoding writes into them in
place (a sliding ring overwrites stored tokens). So the pool hands an agent's runs to at most
one live cache at a time, and never hands its data out again once such a cache has written
without being stored back. Each lent layer is watched through what ``mlx_lm_caches.watch``
keeps of it, which outlives the cache object: a cache that advanced and was then
dropped is still seen to have advanced. A loan ends when its cache is stored back (the engine
then hands the cache views of its data instead of the pool's arrays, see ``engine``) or when
its caches are all gone without having moved.

Not locked by itself: the engine calls it under the agent's lock.
"""

import weakref

from .errors import AgentOnLoanError
from .mlx_lm_caches import first_move, state_ids, watch


class Loan:
    """One restored cache list; ``watched``: layer_id -> (run, ring_index) it was lent."""

    def __init__(self, cache, total_tokens, watched):
        self.total_tokens = total_tokens
        self._refs = [weakref.ref(cache[i]) for i in watched]
        states = watch(cache, watched)
        self._watched = {i: (states[i], run, ring) for i, (run, ring) in watched.items()}
        self.state_ids = {id(state) for state in states.values()}  # alive: held above

    def moved_to(self, current_runs):
        """The token count a watched cache moved to, or None while every one is as lent.
        Only layers whose run the agent still stores count: the others protect nothing."""
        return first_move(
            [watched for layer_id, watched in self._watched.items() if current_runs.get(layer_id) is watched[1]],
            self.total_tokens,
        )

    def covers(self, cache):
        """True if a layer of ``cache`` is one this loan watches (O(1) per layer)."""
        return not self.state_ids.isdisjoint(state_ids(cache))

    def holds(self, current_runs):
        """True if a watched layer still holds a run the agent stores."""
        return any(current_runs.get(layer_id) is run for layer_id, (_, run, _) in self._watched.items())

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
        return {i for i, state_id in enumerate(state_ids(cache)) if state_id in watched}

    def lend(self, agent_id, cache, total_tokens, watched):
        if watched:
            self._loans.setdefault(agent_id, []).append(Loan(cache, total_tokens, watched))

    def check(self, agent_id, current_runs, lending):
        """Raise ``AgentOnLoanError`` if a cache lent from ``agent_id`` moved without being stored,
        or, when ``lending`` the runs again, if such a cache is still alive."""
        kept = []
        for loan in self._loans.get(agent_id, ()):
            moved_to = loan.moved_to(current_runs)
            if moved_to is not None:
                raise AgentOnLoanError(
                    f"agent {agent_id!r} was restored zero-copy and that cache moved on ({loan.total_tokens} -> "
                    f"{moved_to} tokens) without being stored: store(agent_id, cache) it first, or free_agent"
                )
            if not loan.is_dropped():
                if lending and loan.holds(current_runs):
                    raise AgentOnLoanError(
                        f"agent {agent_id!r} is lent to a live zero-copy restore ({loan.total_tokens} tokens) that was "
                        "not stored back, and two caches must not share memory: store(agent_id, cache) or drop that "
                        "cache first, or restore with strategy='gather' for a private copy"
                    )
                kept.append(loan)
        self._loans[agent_id] = kept

    def release(self, agent_id, cache):
        """``cache`` was stored back: its loans end."""
        loans = self._loans.get(agent_id)
        if loans:
            self._loans[agent_id] = [loan for loan in loans if not loan.covers(cache)]

    def forget(self, agent_id):
        self._loans.pop(agent_id, None)
