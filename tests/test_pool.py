"""BlockPool accounting and AgentBlocks tables: counts, bytes, exhaustion, free, reuse."""

import pytest

from kvcache import AgentBlocks, BlockOwnershipError, BlockPool, KVCacheError, PoolExhaustedError, SpecError

from conftest import small_spec


@pytest.fixture
def spec():
    return small_spec(block_tokens=4, window=6)  # layers: global, sliding (window 6), global


def counts(pool):
    return pool.num_free_blocks, pool.num_used_blocks, pool.free_bytes, pool.used_bytes, pool.agent_ids()


def test_a_new_pool_is_all_free(spec):
    pool = BlockPool(spec, total_blocks=10)
    assert counts(pool) == (10, 0, 10 * spec.bytes_per_block, 0, [])
    assert spec.bytes_per_block == 4 * 2 * (8 + 8) * 4  # tokens x heads x (k + v dims) x float32


def test_allocate_gives_a_contiguous_run_and_counts_it(spec):
    pool = BlockPool(spec, total_blocks=10)
    blocks = pool.allocate(3, 0, "a")
    assert [b.block_id for b in blocks] == [0, 1, 2]
    assert {b.run for b in blocks} == {blocks[0].run} and [b.index for b in blocks] == [0, 1, 2]
    assert all(b.layer_id == 0 and b.agent_id == "a" and pool.is_allocated(b) for b in blocks)
    assert blocks[0].run.keys.shape == blocks[0].run.values.shape == (1, 2, 12, 8)
    assert [b.token_range(4) for b in blocks] == [(0, 4), (4, 8), (8, 12)]
    assert counts(pool) == (7, 3, 7 * spec.bytes_per_block, 3 * spec.bytes_per_block, ["a"])
    assert pool.num_blocks_of("a") == 3 and pool.num_blocks_of("b") == 0


def test_a_sliding_run_stops_at_the_window(spec):
    blocks = BlockPool(spec, total_blocks=10).allocate(2, 1, "a")  # 2 x 4 slots, window 6
    assert blocks[0].run.keys.shape[2] == 6
    assert [b.token_range(4) for b in blocks] == [(0, 4), (4, 6)]


def test_exhaustion_allocates_nothing_and_says_how_many(spec):
    pool = BlockPool(spec, total_blocks=10)
    pool.allocate(7, 0, "a")
    before = counts(pool)
    with pytest.raises(PoolExhaustedError, match=r"asked for 4 blocks for agent 'b' \(layer 2\), 3 of 10 free"):
        pool.allocate(4, 2, "b")
    assert counts(pool) == before
    assert [b.block_id for b in pool.allocate(3, 2, "b")] == [7, 8, 9]  # exactly what was left
    with pytest.raises(PoolExhaustedError, match=r"0 of 10 free"):
        pool.allocate(1, 0, "c")


def test_allocate_runs_gives_every_run_or_none(spec):
    pool = BlockPool(spec, total_blocks=10)
    pool.allocate(4, 0, "a")
    before = counts(pool)
    with pytest.raises(PoolExhaustedError, match=r"asked for 7 blocks for agent 'b' \(3 layers\), 6 of 10 free"):
        pool.allocate_runs([(2, 0), (2, 1), (3, 2)], "b")
    assert counts(pool) == before
    runs = pool.allocate_runs([(2, 0), (1, 1), (3, 2)], "b")
    assert [(r.layer_id, r.n_blocks, r.agent_id) for r in runs] == [(0, 2, "b"), (1, 1, "b"), (2, 3, "b")]
    assert [b.block_id for r in runs for b in r.blocks] == [4, 5, 6, 7, 8, 9]
    assert all(pool.is_allocated(b) for r in runs for b in r.blocks) and pool.num_free_blocks == 0
    assert pool.allocate_runs([], "c") == [] and pool.agent_ids() == ["a", "b"]


def test_new_runs_hold_no_blocks_until_booked_and_a_refused_booking_changes_nothing(spec):
    pool = BlockPool(spec, total_blocks=10)
    old = pool.allocate_runs([(4, 0), (2, 1)], "a")
    runs = pool.new_runs([(6, 0), (3, 1)], "a")
    assert pool.num_free_blocks == 4 and not any(run.is_intact for run in runs)
    before = counts(pool)
    with pytest.raises(PoolExhaustedError, match=r"asked for 9 blocks for agent 'a' \(2 layers\), 4 of 10 free and 4 it gives up"):
        pool.book_runs(runs, old[:1])
    assert counts(pool) == before and all(run.is_intact for run in old) and not any(run.is_intact for run in runs)
    assert pool.book_runs(runs, old) is runs  # the blocks given up count as free
    assert all(run.is_intact for run in runs) and not any(run.is_intact for run in old)
    assert pool.num_free_blocks == 1 and pool.num_blocks_of("a") == 9


@pytest.mark.parametrize("n_blocks,layer_id,message", [
    (0, 0, r"n_blocks=0"), (-1, 0, r"n_blocks=-1"), (1.5, 0, r"n_blocks=1.5"),
    (1, 3, r"layer_id=3: the model has layers 0..2"), (1, -1, r"layer_id=-1"), (1, "1", r"layer_id='1'"),
    (1, 1.0, r"layer_id=1.0"),
])
def test_allocate_refuses_bad_arguments(spec, n_blocks, layer_id, message):
    pool = BlockPool(spec, total_blocks=10)
    with pytest.raises(KVCacheError, match=message) as refused:
        pool.allocate(n_blocks, layer_id, "a")
    assert isinstance(refused.value, ValueError)  # callers that caught ValueError still do
    assert counts(pool) == (10, 0, 10 * spec.bytes_per_block, 0, [])


@pytest.mark.parametrize("total_blocks", [0, -5, 2.0, "10"])
def test_a_pool_needs_a_positive_block_count(spec, total_blocks):
    with pytest.raises(SpecError, match=r"total_blocks=.*positive whole number"):
        BlockPool(spec, total_blocks=total_blocks)


def test_free_returns_blocks_and_their_ids_are_reused(spec):
    pool = BlockPool(spec, total_blocks=6)
    a = pool.allocate(2, 0, "a")
    b = pool.allocate(3, 1, "b")
    pool.free(a)
    assert counts(pool)[:2] == (3, 3) and pool.agent_ids() == ["b"]
    assert not any(pool.is_allocated(block) for block in a)
    c = pool.allocate(3, 2, "c")  # needs the freed ids
    assert sorted(block.block_id for block in c) == [0, 1, 5]
    assert counts(pool)[:2] == (0, 6)
    assert all(pool.is_allocated(block) for block in b + c)


def test_freeing_a_block_twice_raises_and_frees_nothing(spec):
    pool = BlockPool(spec, total_blocks=6)
    a = pool.allocate(2, 0, "a")
    pool.free(a[:1])
    before = counts(pool)
    with pytest.raises(BlockOwnershipError, match=r"Block\(id=0, layer=0, agent='a'\) is not allocated; nothing was freed"):
        pool.free(a)  # a[0] again, with a[1] that is still allocated
    assert counts(pool) == before and pool.is_allocated(a[1])


def test_a_block_listed_twice_frees_nothing(spec):
    pool = BlockPool(spec, total_blocks=6)
    a = pool.allocate(2, 0, "a")
    with pytest.raises(BlockOwnershipError, match=r"listed twice; nothing was freed"):
        pool.free([a[0], a[1], a[0]])
    assert all(pool.is_allocated(block) for block in a) and pool.num_used_blocks == 2


def test_a_block_of_another_pool_frees_nothing(spec):
    pool, other = BlockPool(spec, total_blocks=6), BlockPool(spec, total_blocks=6)
    mine, foreign = pool.allocate(2, 0, "a"), other.allocate(2, 0, "a")  # same ids, other pool
    with pytest.raises(BlockOwnershipError, match=r"not allocated"):
        pool.free([mine[0], foreign[1]])
    assert all(pool.is_allocated(block) for block in mine) and other.num_used_blocks == 2


def test_a_stale_handle_cannot_free_the_new_owner_of_its_id(spec):
    pool = BlockPool(spec, total_blocks=2)
    (old,) = pool.allocate(1, 0, "a")
    pool.free([old])
    (new,) = pool.allocate(1, 0, "b")
    assert new.block_id == old.block_id and not pool.is_allocated(old)
    with pytest.raises(BlockOwnershipError):
        pool.free([old])
    assert pool.is_allocated(new) and pool.agent_ids() == ["b"]


def test_free_agent_frees_that_agent_only(spec):
    pool = BlockPool(spec, total_blocks=10)
    pool.allocate(2, 0, "a")
    pool.allocate(1, 1, "a")
    b = pool.allocate(3, 2, "b")
    assert pool.free_agent("a") == 3
    assert counts(pool)[:2] == (7, 3) and pool.agent_ids() == ["b"] and pool.num_blocks_of("a") == 0
    assert all(pool.is_allocated(block) for block in b)
    assert pool.free_agent("a") == 0 and pool.free_agent("nobody") == 0
    assert counts(pool)[:2] == (7, 3)


def test_free_run_frees_what_is_left_of_a_run_once(spec):
    pool = BlockPool(spec, total_blocks=10)
    run = pool.allocate_run(4, 0, "a")
    other = pool.allocate_run(2, 1, "a")
    pool.free(run.blocks[1:2])  # one block freed on its own first
    assert not run.is_intact and run.n_allocated == 3
    assert pool.free_run(run) == 3 and pool.free_run(run) == 0
    assert not any(pool.is_allocated(b) for b in run.blocks) and run.n_allocated == 0
    assert counts(pool)[:2] == (8, 2) and pool.num_blocks_of("a") == 2 and other.is_intact
    assert BlockPool(spec, total_blocks=10).free_run(other) == 0  # another pool's run: nothing
    assert pool.is_allocated(other.blocks[0])


def test_block_handles_are_made_once_per_run(spec):
    pool = BlockPool(spec, total_blocks=10)
    run = pool.allocate_run(3, 0, "a")
    handles = run.blocks
    assert run.blocks is handles and [b.index for b in handles] == [0, 1, 2]
    assert [b.block_id for b in handles] == run.block_ids and all(b.run is run for b in handles)
    table = AgentBlocks("a", total_tokens=9)
    table.add_run(run)
    assert table.whole_run(0) is run and table.num_blocks_for_layer(0) == 3
    assert all(x is y for x, y in zip(table.blocks_for_layer(0), handles))


# --- AgentBlocks --------------------------------------------------------------------------------
def test_a_layer_of_one_run_is_whole_and_of_several_is_not(spec):
    pool = BlockPool(spec, total_blocks=10)
    table = AgentBlocks("a", total_tokens=9)
    first = pool.allocate_run(3, 0, "a")
    table.add_run(first)
    assert table.whole_run(0) is first
    second = pool.allocate_run(1, 0, "a")
    table.add_run(second)  # a fragmented layer: no longer one whole run
    assert table.whole_run(0) is None and table.runs_for_layer(0) == [first, second]
    assert table.num_blocks_for_layer(0) == 4 and table.layer_ids == [0]
    assert table.blocks_for_layer(0) == list(first.blocks) + list(second.blocks)


def test_agent_blocks_keeps_each_layer_in_token_order(spec):
    pool = BlockPool(spec, total_blocks=10)
    table = AgentBlocks("a", total_tokens=7)
    first, second = pool.allocate_run(2, 0, "a"), pool.allocate_run(2, 1, "a")
    for run in (second, first):
        table.add_run(run)
    assert table.blocks_for_layer(0) == list(first.blocks) and table.blocks_for_layer(1) == list(second.blocks)
    assert table.blocks_for_layer(2) == [] and table.runs() == [first, second]
    assert table.all_blocks() == list(first.blocks + second.blocks) and table.layer_ids == [0, 1]
    assert table.num_blocks == 4


def test_agent_blocks_refuses_another_agents_run(spec):
    pool = BlockPool(spec, total_blocks=10)
    table = AgentBlocks("a", total_tokens=3)
    with pytest.raises(BlockOwnershipError, match=r"belongs to agent 'b', not 'a'"):
        table.add_run(pool.allocate_run(1, 0, "b"))
    assert table.num_blocks == 0


@pytest.mark.parametrize("total_tokens", [-1, 2.5, None])
def test_agent_blocks_needs_a_token_count(total_tokens):
    with pytest.raises(KVCacheError, match=r"total_tokens=") as refused:
        AgentBlocks("a", total_tokens)
    assert isinstance(refused.value, ValueError)


def test_a_run_is_booked_once(spec):
    pool = BlockPool(spec, total_blocks=10)
    [run] = pool.allocate_runs([(2, 0)], "a")
    before = counts(pool)
    with pytest.raises(BlockOwnershipError, match=r"booked already: make new runs with new_runs"):
        pool.book_runs([run], ())
    assert counts(pool) == before
