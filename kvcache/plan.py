"""A store's plan: for each layer, one of three steps, and the layer's ring index.

- ``Adopt(run)``: the layer's arrays are the agent's run (a zero-copy restore that still fits
  it): the run is kept as it is, nothing is copied or booked;
- ``Take(n_blocks, keys, values)``: arrays the lent cache made itself (mlx-lm grew the layer
  into a buffer of exactly a run's size) become the buffers of a new run of ``n_blocks``;
- ``Copy(n_blocks, jobs)``: ``jobs`` (keys, values: ``copying`` jobs) are copied into a new run
  of ``n_blocks``.

``mlx_lm_caches.plan_layer`` makes the steps (it is what reads the cache); ``StorePlan`` says
what they add up to, and ``engine.store`` carries it out: the copies, then one commit.
"""

from typing import NamedTuple

from .agent_blocks import AgentBlocks


class Adopt(NamedTuple):
    run: object
    ring_index: int | None


class Take(NamedTuple):
    n_blocks: int
    keys: object
    values: object
    ring_index: int | None


class Copy(NamedTuple):
    n_blocks: int
    jobs: list
    ring_index: int | None


class StorePlan:
    """The steps that store one cache of ``total_tokens`` tokens, one per layer."""

    def __init__(self, total_tokens, steps, lent):
        """``lent``: the layer ids whose cache is lent; those not copied keep its arrays."""
        self.total_tokens = total_tokens
        self.steps = steps
        self.lent = [i for i in lent if type(steps[i]) is not Copy]  # layers holding a lent cache's own arrays

    def copy_jobs(self):
        """Every copy the store makes (``copying.copy_jobs``): keys then values, layer by layer."""
        return [job for step in self.steps if type(step) is Copy for job in step.jobs]

    def run_requests(self):
        """``(n_blocks, layer_id)`` of each new run (``BlockPool.new_runs``), in layer order."""
        return [(step.n_blocks, i) for i, step in enumerate(self.steps) if type(step) is not Adopt]

    def given_up(self, old):
        """The runs of ``old`` (the agent's table, or None) that the new state does not keep."""
        if old is None:
            return []
        kept = {id(step.run) for step in self.steps if type(step) is Adopt}
        return [run for run in map(old.whole_run, old.layer_ids) if run is not None and id(run) not in kept]

    def layer_arrays(self, copied):
        """``(keys, values)`` of every layer, given the arrays ``copy_jobs`` made, in order."""
        copied = iter(copied)
        arrays = []
        for step in self.steps:
            kind = type(step)
            if kind is Copy:
                arrays.append((next(copied), next(copied)))
            elif kind is Take:
                arrays.append((step.keys, step.values))
            else:
                arrays.append((step.run.keys, step.run.values))
        return arrays

    def table(self, agent_id, new_runs, layer_arrays):
        """The agent's new table: adopted runs as they are, the ``new_runs`` (``run_requests``
        order) holding their layer's arrays."""
        table = AgentBlocks(agent_id, self.total_tokens)
        new_runs = iter(new_runs)
        for layer_id, (step, (keys, values)) in enumerate(zip(self.steps, layer_arrays)):
            if type(step) is Adopt:
                run = step.run
            else:
                run = next(new_runs)
                run.keys, run.values = keys, values
            if step.ring_index is not None:
                table.ring_index[layer_id] = step.ring_index
            table.add_run(run)
        return table
