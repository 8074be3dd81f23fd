"""Threads against one pool: no lost, crossed or torn data, and exact counts afterwards.

Two MLX 0.32.4 facts shape these tests. An unevaluated array belongs to the stream of the
thread that made it ("There is no Stream(cpu, N) in current thread" elsewhere), so the engine
evaluates everything it stores and restores. And a function made with ``mx.compile`` (every
mlx-lm model forward uses some) run in a worker thread made the process abort at exit (code
134) in about half of 20 runs: so no model forward runs in a worker thread here; threads work
on synthetic caches.
"""

import threading

import mlx.core as mx
import pytest

from kvcache import STRATEGIES, AgentOnLoanError, BlockPool, BlockPoolBatchEngine, PoolExhaustedError
from kvcache.synthetic import random_cache

from conftest import arrays_equal, held_tokens, small_spec

SPEC = small_spec(block_tokens=4, window=6)
ROUNDS = 12


def run_threads(targets):
    """Starts every target together; re-raises the first exception any of them raised."""
    errors = []
    barrier = threading.Barrier(len(targets))

    def guarded(target):
        try:
            barrier.wait()
            target()
        except BaseException as error:  # noqa: BLE001 (reported to the test below)
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def advanced_cache(seed, n, steps):
    """Seeded data: ``n`` tokens, then ``steps`` single tokens written by mlx-lm (rings wrap)."""
    cache = random_cache(SPEC, n, seed)
    key = mx.random.key(seed + 1)
    for _ in range(steps):
        for layer_cache in cache:
            key, sub = mx.random.split(key)
            token = mx.random.normal(SPEC.kv_shape(1)[0], key=sub)
            layer_cache.update_and_fetch(token, token)
    return cache


def snapshot(cache):
    held = [(c.offset,) + held_tokens(c) for c in cache]
    mx.eval([a for _, k, v in held for a in (k, v)])
    return held


def assert_holds(cache, expected, who):
    for layer_id, (c, (n, keys, values)) in enumerate(zip(cache, expected)):
        got_keys, got_values = held_tokens(c)
        assert c.offset == n, f"{who} layer {layer_id}: {c.offset} tokens, stored {n}"
        assert arrays_equal(got_keys, keys) and arrays_equal(got_values, values), f"{who} layer {layer_id}: data"


def test_agents_in_parallel_get_back_exactly_their_own_data():
    engine = BlockPoolBatchEngine(BlockPool(SPEC, total_blocks=2000))
    last = {}

    def agent_worker(i):
        def work():
            agent = f"agent-{i}"
            for round_ in range(ROUNDS):
                seed = 1000 * i + round_
                cache = advanced_cache(seed, n=1 + seed % 17, steps=seed % 5)
                expected = snapshot(cache)
                engine.store(agent, cache)
                for strategy in STRATEGIES:
                    assert_holds(engine.reconstruct(agent, strategy), expected, agent)
                resumed = engine.reconstruct(agent)  # zero-copy: advance in place and park again
                token = mx.full(SPEC.kv_shape(1)[0], float(i))
                for layer_cache in resumed:
                    layer_cache.update_and_fetch(token, token)
                expected = snapshot(resumed)
                engine.store(agent, resumed)
                assert_holds(engine.reconstruct(agent, "gather"), expected, agent)
            last[agent] = expected
        return work

    def allocator_worker(i):
        def work():
            for round_ in range(5 * ROUNDS):
                blocks = engine.pool.allocate(1 + round_ % 7, round_ % SPEC.n_layers, f"raw-{i}")
                assert all(b.agent_id == f"raw-{i}" and engine.pool.is_allocated(b) for b in blocks)
                engine.pool.free(blocks)
        return work

    run_threads([agent_worker(i) for i in range(8)] + [allocator_worker(i) for i in range(3)])

    pool = engine.pool
    assert sorted(last) == engine.agent_ids() == pool.agent_ids()
    tables = [engine.agent_blocks(agent) for agent in last]
    ids = [b.block_id for table in tables for b in table.all_blocks()]
    assert len(ids) == len(set(ids)), "a block is held by two agents"
    assert pool.num_used_blocks == len(ids) and pool.num_free_blocks == pool.total_blocks - len(ids)
    for agent, expected in last.items():
        assert pool.num_blocks_of(agent) == engine.agent_blocks(agent).num_blocks
        for strategy in STRATEGIES:
            assert_holds(engine.reconstruct(agent, strategy), expected, agent)


def test_one_agent_stored_and_restored_from_many_threads_is_never_torn():
    """Writer ``w`` stores caches whose every value is ``w`` and whose length is ``5 + w``: a
    restore must show one writer's cache whole, on every layer."""
    engine = BlockPoolBatchEngine(BlockPool(SPEC, total_blocks=2000))
    engine.store("shared", constant_cache(0))

    def writer(w):
        def work():
            for _ in range(ROUNDS):
                engine.store("shared", constant_cache(w))
        return work

    restored = []

    def reader(strategy):
        def work():
            for _ in range(2 * ROUNDS):
                try:
                    cache = engine.reconstruct("shared", strategy)
                except AgentOnLoanError:  # the other zero-copy reader holds the agent's runs
                    assert strategy == "zero_copy", f"{strategy} restores a private copy, lent or not"
                    continue
                restored.append(strategy)
                writer_id = cache[0].offset - 5
                for layer_id, layer_cache in enumerate(cache):
                    keys, values = held_tokens(layer_cache)
                    assert layer_cache.offset == 5 + writer_id, f"layer {layer_id}: torn token counts"
                    assert mx.all(keys == writer_id).item() and mx.all(values == writer_id).item(), (
                        f"layer {layer_id}: data of another store than writer {writer_id}'s"
                    )
                del cache, layer_cache  # a live zero-copy restore would keep the next one out
        return work

    run_threads([writer(w) for w in range(4)] + [reader(s) for s in STRATEGIES for _ in range(2)])
    assert set(restored) == set(STRATEGIES)
    table = engine.agent_blocks("shared")
    assert engine.pool.num_used_blocks == table.num_blocks == engine.pool.num_blocks_of("shared")


def constant_cache(value):
    cache = random_cache(SPEC, 5 + value)
    for layer_cache in cache:
        layer_cache.keys = mx.full(layer_cache.keys.shape, float(value))
        layer_cache.values = mx.full(layer_cache.values.shape, float(value))
    return cache


def test_parallel_allocation_never_overcommits():
    pool = BlockPool(SPEC, total_blocks=100)
    granted, refused = [], []
    lock = threading.Lock()

    def grab(i):
        def work():
            for _ in range(30):
                try:
                    blocks = pool.allocate(3, i % SPEC.n_layers, f"t{i}")
                except PoolExhaustedError:
                    with lock:
                        refused.append(i)
                    continue
                with lock:
                    granted.append(blocks)
        return work

    run_threads([grab(i) for i in range(8)])
    ids = [b.block_id for blocks in granted for b in blocks]
    assert len(granted) == 33 and len(refused) == 8 * 30 - 33  # 33 x 3 = 99 of 100 blocks
    assert len(set(ids)) == len(ids) == pool.num_used_blocks == 99 and pool.num_free_blocks == 1
    run_threads([lambda blocks=blocks: pool.free(blocks) for blocks in granted])
    assert pool.num_free_blocks == 100 and pool.agent_ids() == []


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_free_agent_racing_restore_either_restores_whole_or_raises(strategy):
    from kvcache import UnknownAgentError

    engine = BlockPoolBatchEngine(BlockPool(SPEC, total_blocks=500))
    caches = {f"agent-{i}": advanced_cache(i, n=9, steps=3) for i in range(8)}
    expected = {agent: snapshot(cache) for agent, cache in caches.items()}
    for agent, cache in caches.items():
        engine.store(agent, cache)
    outcomes = []

    def restorer(agent):
        def work():
            for _ in range(10):
                try:
                    assert_holds(engine.reconstruct(agent, strategy), expected[agent], agent)
                    outcomes.append("restored")
                except UnknownAgentError:
                    outcomes.append("gone")
        return work

    run_threads([restorer(a) for a in caches] + [lambda a=a: engine.free_agent(a) for a in caches])
    assert set(outcomes) <= {"restored", "gone"} and len(outcomes) == 80
    assert engine.pool.num_used_blocks == 0 and engine.agent_ids() == []


# MLX streams are per thread: an array left unevaluated by one thread cannot be evaluated by any other
# (RuntimeError "There is no Stream(cpu, N) in current thread", MLX 0.32). The engine must evaluate what it
# keeps in the thread that stores it.
def in_thread(fn):
    result = {}

    def work():
        try:
            result["value"] = fn()
        except Exception as error:  # noqa: BLE001 (returned to the test)
            result["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return result


def test_a_store_that_fails_to_evaluate_leaks_nothing():
    engine = BlockPoolBatchEngine(BlockPool(SPEC, total_blocks=100))
    cache = random_cache(SPEC, 5)
    token = mx.ones(SPEC.kv_shape(1)[0])
    for layer_cache in cache:
        layer_cache.update_and_fetch(token, token)  # unevaluated, made in this thread
    result = in_thread(lambda: engine.store("a", cache))
    if "error" in result:
        assert engine.pool.num_used_blocks == 0 and engine.pool.agent_ids() == [] and engine.agent_ids() == []
    else:
        expected = snapshot(cache)
        assert_holds(engine.reconstruct("a", "gather"), expected, "a")


def test_an_agent_parked_by_one_thread_resumes_in_another():
    engine = BlockPoolBatchEngine(BlockPool(SPEC, total_blocks=100))
    engine.store("a", random_cache(SPEC, 5, seed=3))
    advanced_reference = random_cache(SPEC, 5, seed=3)
    token = mx.ones(SPEC.kv_shape(1)[0])
    mx.eval(token)  # only the worker's own writes stay unevaluated
    for layer_cache in advanced_reference:
        layer_cache.update_and_fetch(token, token)
    expected = snapshot(advanced_reference)

    def resume_decode_park():  # a worker that decodes without evaluating the cache, then parks it
        cache = engine.reconstruct("a")
        for layer_cache in cache:
            layer_cache.update_and_fetch(token, token)
        engine.store("a", cache)

    assert in_thread(resume_decode_park) == {"value": None}
    result = in_thread(lambda: engine.reconstruct("a", "gather"))
    assert "error" not in result, f"the agent parked by another thread cannot be restored: {result.get('error')!r}"
    assert_holds(result["value"], expected, "a")
