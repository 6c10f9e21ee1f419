"""Reference values for flspec::fl::aggregate, computed once with Flower's own code.

Run: /work/main/.venv-baselines/flower/bin/python scripts/reference/flower_aggregate.py
(flwr 1.42.0, numpy 2.4.6). Prints Rust consts that flspec/tests/fl_aggregate_flower.rs pins.
Inputs: 7 updates of length 5 drawn from numpy.random.default_rng(20261130) (normal, f32),
the last one shifted by +50 (a far-away Byzantine update); weights 10, 20, ..., 70.
"""
import numpy as np
import flwr
from flwr.common import FitRes, Status, Code, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdam, FedYogi, FedAdagrad, FedAvgM
from flwr.server.strategy.aggregate import (
    aggregate, aggregate_median, aggregate_trimmed_avg, aggregate_krum, aggregate_bulyan,
)

rng = np.random.default_rng(20261130)
N, D = 7, 5
ups = [rng.standard_normal(D).astype(np.float32) for _ in range(N)]
ups[-1] = ups[-1] + np.float32(50.0)
ws = [10 * (i + 1) for i in range(N)]
res = lambda: [([u.copy()], w) for u, w in zip(ups, ws)]

def emit(name, arr):
    vals = ", ".join(repr(float(x)) for x in np.asarray(arr, dtype=np.float64).ravel())
    print(f"pub const {name}: &[f64] = &[{vals}];")

print(f"// flwr {flwr.__version__}, numpy {np.__version__}")
print("pub const UPDATES: [[f32; 5]; 7] = [")
for u in ups:
    print("    [" + ", ".join(repr(float(x)) for x in u) + "],")
print("];")
print("pub const WEIGHTS: [f64; 7] = [" + ", ".join(f"{w}.0" for w in ws) + "];")
emit("WEIGHTED_MEAN", aggregate(res())[0])
emit("MEDIAN", aggregate_median(res())[0])
emit("TRIMMED_MEAN_0_2", aggregate_trimmed_avg(res(), 0.2)[0])
emit("KRUM_F2", aggregate_krum(res(), 2, 0)[0])
emit("MULTI_KRUM_F2_M3", aggregate_krum(res(), 2, 3)[0])
emit("BULYAN_F1", aggregate_bulyan(res(), 1, aggregate_krum, to_keep=0)[0])
# Bulyan's repeated Krum on a shrinking set meets tied scores (a mutual nearest pair); Flower
# takes the first index, flspec the lexicographically smaller update (order-independent). Given
# the updates in lexicographic order, both rules pick the same update.
lex = sorted(range(N), key=lambda i: tuple(float(x) for x in ups[i]))
emit("BULYAN_F1_LEX_ORDER", aggregate_bulyan([([ups[i].copy()], ws[i]) for i in lex], 1, aggregate_krum, to_keep=0)[0])

# Server optimizers: 3 rounds, each round's client results are UPDATES (+ 0.1 * round).
init = (np.arange(D, dtype=np.float32) / 10).astype(np.float32)
emit("INITIAL", init)
def run(strategy):
    out = []
    for rnd in (1, 2, 3):
        results = [
            (None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters([u + np.float32(0.1 * rnd)]), w, {}))
            for u, w in zip(ups[:-1], ws[:-1])
        ]
        params, _ = strategy.aggregate_fit(rnd, results, [])
        out.append(parameters_to_ndarrays(params)[0])
    return np.concatenate(out)
p0 = ndarrays_to_parameters([init])
emit("FEDADAM_3_ROUNDS", run(FedAdam(initial_parameters=p0)))
emit("FEDYOGI_3_ROUNDS", run(FedYogi(initial_parameters=p0)))
emit("FEDADAGRAD_3_ROUNDS", run(FedAdagrad(initial_parameters=p0)))
emit("FEDAVGM_3_ROUNDS", run(FedAvgM(initial_parameters=p0, server_learning_rate=0.5, server_momentum=0.9)))
