"""Where a store's time goes on the GPU: the engine vs the same copies alone vs a plain copy."""
import cProfile, io, pstats, statistics, time
import mlx.core as mx
import kvcache
from kvcache.cache_layers import held_pieces
from kvcache.copying import fused_copy

def med(fn, runs=20):
    for _ in range(3): mx.eval(fn())
    ts = []
    for _ in range(runs):
        mx.synchronize(); t = time.perf_counter(); mx.eval(fn()); mx.synchronize(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3

spec = kvcache.ModelCacheSpec.from_preset("gemma3-12b")
for n in (2048, 8192):
    live = kvcache.random_cache(spec, n)
    pool = kvcache.BlockPool(spec, 3 * sum(spec.blocks_needed(i, n) for i in range(spec.n_layers)))
    eng = kvcache.BlockPoolBatchEngine(pool)
    arrays = [a for c in live for a in (c.keys, c.values)]
    plain = med(lambda: [mx.array(a) for a in arrays])
    def copies_only():
        out = []
        for i, c in enumerate(live):
            k, v, _ = held_pieces(c, spec, i)
            cap = spec.capacity_tokens(i, spec.blocks_needed(i, n))
            out += [fused_copy(k, cap - sum(p.shape[2] for p in k)), fused_copy(v, cap - sum(p.shape[2] for p in v))]
        return out
    copies = med(copies_only)
    def build_only():  # graph building without evaluation
        t = time.perf_counter(); copies_only(); return time.perf_counter() - t
    graph = statistics.median(build_only() for _ in range(20)) * 1e3
    store = med(lambda: [eng.store("a", live).all_blocks()[0].run.keys])
    print(f"{n}: plain {plain:.3f} ms | same copies alone {copies:.3f} (graph build {graph:.3f}) | engine.store {store:.3f}")
    pr = cProfile.Profile(); pr.enable()
    for _ in range(10): mx.eval(eng.store("a", live).all_blocks()[0].run.keys)
    pr.disable(); s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(8); print(s.getvalue()[-1800:])
