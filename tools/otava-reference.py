"""Write tests/data/otava_reference.json: fixed series and the change points Apache Otava finds.

Run with a Python that has apache-otava installed (kept out of the project's environments,
ADR-006): ``python -m venv /tmp/otava && /tmp/otava/bin/pip install apache-otava==0.8.0 &&
/tmp/otava/bin/python tools/otava-reference.py``. tests/test_changepoints.py checks that
kvtracker.changepoints finds the same ones.
"""

import json
import os
from importlib import metadata

import numpy as np
from otava.analysis import compute_change_points

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "otava_reference.json")


def series():
    """(name, values, window_len, max_pvalue, min_magnitude): steps, creep, bursts, noise."""
    rng = np.random.default_rng(2026)
    cases = []
    for seed in range(12):
        n = int(rng.integers(20, 120))
        level = np.ones(n)
        for _ in range(int(rng.integers(0, 4))):  # up to 3 steps of -30%..+60%
            level[int(rng.integers(1, n)) :] *= 1 + rng.uniform(-0.3, 0.6)
        noise = rng.lognormal(0, rng.choice([0.02, 0.05, 0.15]), n)
        cases.append((f"steps-{seed}", list(level * noise), 50, 0.001, 0.0))
    creep = np.concatenate([np.ones(20), 1 + 0.01 * np.arange(1, 16), np.full(15, 1.15)])
    cases.append(("creep", list(creep * rng.lognormal(0, 0.03, creep.size)), 50, 0.001, 0.0))
    burst = np.ones(40)
    burst[20:22] = 1.4
    cases.append(("burst", list(burst * rng.lognormal(0, 0.03, 40)), 50, 0.001, 0.0))
    cases.append(("short", [1.0, 1.02, 0.99, 1.5, 1.52, 1.49], 50, 0.001, 0.0))
    noisy = list(rng.lognormal(0, 0.1, 200))
    for window, pvalue, magnitude in [(30, 0.01, 0.0), (50, 0.05, 0.0), (20, 0.001, 0.05)]:
        cases.append((f"noise-w{window}-p{pvalue}-m{magnitude}", noisy, window, pvalue, magnitude))
    return cases


def main():
    out = {"otava": metadata.version("apache-otava"), "cases": []}
    for name, values, window, pvalue, magnitude in series():
        points, _ = compute_change_points(list(values), window, pvalue, magnitude)
        out["cases"].append(
            {
                "name": name,
                "values": [float(v) for v in values],
                "window_len": window,
                "max_pvalue": pvalue,
                "min_magnitude": magnitude,
                "change_points": [{"index": int(p.index), "pvalue": float(p.stats.pvalue)} for p in points],
            }
        )
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {len(out['cases'])} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
