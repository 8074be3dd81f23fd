"""Micro-benchmark on the GPU: ways to make the copies that store/gather need (one layer set of
Gemma 3 12B at 8K: 8 global layers of 8192 tokens + spare, 40 sliding of 1024), vs a plain copy."""
import statistics, time
import mlx.core as mx

H, D, bt = 8, 256, 256
dt = mx.bfloat16

def timeit(fn, runs=30):
    for _ in range(3): mx.eval(fn())
    ts = []
    for _ in range(runs):
        mx.synchronize(); t = time.perf_counter(); mx.eval(fn()); mx.synchronize(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3

glob = [mx.random.normal((1, H, 8192, D)).astype(dt) for _ in range(16)]   # 8 layers x K,V
slid = [mx.random.normal((1, H, 1024, D)).astype(dt) for _ in range(80)]
mx.eval(glob, slid)
allarr = glob + slid
mib = sum(a.nbytes for a in allarr) / 2**20
print(f"bytes {mib:.0f} MiB")
plain = timeit(lambda: [mx.array(a) for a in allarr])
print(f"plain mx.array copy: {plain:.3f} ms")
def store_concat():
    out = [mx.concatenate([a, mx.zeros((1, H, 256, D), dt)], axis=2) for a in glob]
    return out + [mx.array(a) for a in slid]
def store_pad():
    return [mx.pad(a, [(0, 0), (0, 0), (0, 256), (0, 0)]) for a in glob] + [mx.array(a) for a in slid]
def store_update():
    outs = []
    for a in glob:
        b = mx.zeros((1, H, 8448, D), dt); b[..., :8192, :] = a; outs.append(b)
    return outs + [mx.array(a) for a in slid]
def store_nospare():
    return [mx.array(a) for a in allarr]
for name, f in [("store concat+zeros", store_concat), ("store pad", store_pad), ("store zeros+slice_update", store_update), ("store no spare (plain)", store_nospare)]:
    t = timeit(f); print(f"{name}: {t:.3f} ms  eff {plain / t:.0%}")

# scattered blocks: each block its own (1,H,256,D) buffer
blocks = [[mx.array(a[..., i*bt:(i+1)*bt, :]) for i in range(a.shape[2] // bt)] for a in allarr]
mx.eval(blocks)
t = timeit(lambda: [mx.concatenate(bs, axis=2) for bs in blocks]); print(f"gather concat per block: {t:.3f} ms eff {plain/t:.0%}")

def make_kernel(k):
    names = [f"b{i}" for i in range(k)]
    src = f"""
    const T* srcs[{k}] = {{{", ".join(names)}}};
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;   // one uint4 (8 bf16) per thread
    size_t total = (size_t)H * S * (D / 8);
    if (e >= total) return;
    size_t d8 = e % (D / 8); size_t t = (e / (D / 8)) % S; size_t h = e / ((D / 8) * S);
    const T* src = srcs[t / BT];
    size_t off = ((h * BT + (t % BT)) * D) / 8 + d8;
    reinterpret_cast<uint4*>(out)[e] = reinterpret_cast<const uint4*>(src)[off];
    """
    return mx.fast.cuda_kernel(name=f"gather{k}", input_names=names, output_names=["out"], source=src)
kernels = {}
def fused(bs):
    k = len(bs); S = k * bt
    kern = kernels.setdefault(k, make_kernel(k))
    total = H * S * (D // 8)
    return kern(inputs=bs, template=[("T", dt), ("H", H), ("S", S), ("D", D), ("BT", bt)],
                grid=((total + 255) // 256 * 256, 1, 1), threadgroup=(256, 1, 1),
                output_shapes=[(1, H, S, D)], output_dtypes=[dt])[0]
try:
    outs = [fused(bs) for bs in blocks]; mx.eval(outs)
    ok = all(mx.array_equal(o, a).item() for o, a in zip(outs, allarr))
    t = timeit(lambda: [fused(bs) for bs in blocks]); print(f"gather fused cuda kernel per layer: {t:.3f} ms eff {plain/t:.0%} correct={ok}")
except Exception as e:
    print("fused kernel failed:", repr(e)[:500])
