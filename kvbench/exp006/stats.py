"""EXP-006's statistics and judgments: pure functions over timing samples (milliseconds).

The thresholds are the seed's (docs/experiments/EXP-006.md): p95 < 5 ms and std < 20% of
the mean must pass; p99 < 10 ms and a mean-time ratio in [1.5, 2.5] between a context and
half of it ("linear scaling") are nice to have. The scaling criterion is about copying, so
it is judged on the strategies that copy; the zero-copy strategy is reported as flat.
Verdict (seed's "Success Criteria"): GO when p95 < 5 ms and the std criterion passes,
NO-GO when p95 > 10 ms, conditional GO otherwise.
"""

import numpy as np

P95_TARGET_MS = 5.0
P99_TARGET_MS = 10.0
NO_GO_P95_MS = 10.0
STD_FRACTION = 0.2
SCALING_RANGE = (1.5, 2.5)
REFERENCE_CONTEXT = 8192
COPYING_STRATEGIES = ("concat", "gather")

GO, CONDITIONAL_GO, NO_GO = "GO", "conditional GO", "NO-GO"


def summarize(samples_ms):
    """p50, p95, p99 (numpy's linear interpolation), mean, std (population), min, max, samples.

    ``samples_ms`` must hold at least one sample (a run with none measured nothing).
    """
    assert len(samples_ms) > 0, "summarize needs at least one sample: this is a bug in the caller"
    a = np.asarray(samples_ms, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50": float(p50), "p95": float(p95), "p99": float(p99),
        "mean": float(a.mean()), "std": float(a.std()),
        "min": float(a.min()), "max": float(a.max()), "samples": int(a.size),
    }


def reference_contexts(contexts):
    """``(reference, half)``: the context judged (8192 if measured, else the largest) and the
    context it is compared with for scaling (half of it; None when that was not measured)."""
    reference = REFERENCE_CONTEXT if REFERENCE_CONTEXT in contexts else max(contexts)
    half = reference // 2 if reference % 2 == 0 and reference // 2 in contexts else None
    return reference, half


def judge(stats, half_stats=None, strategy=""):
    """The seed's four criteria for one strategy at the reference context.

    ``stats`` are ``summarize`` output at the reference context, ``half_stats`` at half of it
    (None: scaling not judged). Returns a list of ``{"criterion", "value", "limit", "passed",
    "primary"}``; ``passed`` is None where the criterion does not apply (scaling without the
    half context, or for a strategy that copies nothing).
    """
    std_share = stats["std"] / stats["mean"] if stats["mean"] > 0 else 0.0
    judgments = [
        _judgment("p95 < 5 ms", stats["p95"], "< 5 ms", stats["p95"] < P95_TARGET_MS, True),
        _judgment("std < 20% of mean", std_share, "< 0.20", std_share < STD_FRACTION, True),
        _judgment("p99 < 10 ms", stats["p99"], "< 10 ms", stats["p99"] < P99_TARGET_MS, False),
    ]
    ratio = stats["mean"] / half_stats["mean"] if half_stats and half_stats["mean"] > 0 else None
    low, high = SCALING_RANGE
    scaling_applies = ratio is not None and strategy in COPYING_STRATEGIES
    passed = low <= ratio <= high if scaling_applies else None
    judgments.append(_judgment("mean-time ratio (context / half) in [1.5, 2.5]", ratio, "[1.5, 2.5]", passed, False))
    return judgments


def verdict(stats, judgments):
    """GO, conditional GO or NO-GO from the reference context's stats and ``judge`` output."""
    if stats["p95"] > NO_GO_P95_MS:
        return NO_GO
    primary = [j["passed"] for j in judgments if j["primary"]]
    return GO if all(primary) else CONDITIONAL_GO


def _judgment(criterion, value, limit, passed, primary):
    return {"criterion": criterion, "value": value, "limit": limit, "passed": passed, "primary": primary}
