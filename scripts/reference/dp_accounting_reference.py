#!/usr/bin/env python3
"""Reference values pinned in flspec/tests/dp_accountant.rs.

How they were made (once; the tests do not run Python):

    python3 -m venv /tmp/dpvenv
    /tmp/dpvenv/bin/pip install dp-accounting==0.6.0
    /tmp/dpvenv/bin/python scripts/reference/dp_accounting_reference.py

1. The Gaussian mechanism without sampling, composed over T rounds, with Google's
   `dp_accounting` (RdpAccountant with its default order grid, GaussianDpEvent in a
   SelfComposedDpEvent): epsilon for (noise multiplier z, T, delta).
2. The distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, Proposition 14, as in
   google-research/federated distributed_dp/accounting_utils.py, `compute_rdp_dgaussian` with
   q = 1), written out below in plain Python, converted to epsilon with dp_accounting's own
   `compute_epsilon` on the same default order grid. Orders are NOT rounded down to integers
   here (the google-research code does so with its integer grid; flspec uses dp_accounting's
   fractional grid).
"""

import math

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp_mod

ORDERS = rdp_mod.DEFAULT_RDP_ORDERS


def gaussian_eps(z, rounds, delta):
    acc = dp_accounting.rdp.RdpAccountant()  # default orders
    acc.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), rounds))
    return acc.get_epsilon_and_optimal_order(delta)


def ddg_rdp(order, l2, l1, local_var, n, dim):
    # KLS21 Proposition 14; l2/l1: integer-domain sensitivities; local_var: each client's
    # discrete Gaussian variance parameter sigma^2 (integer domain).
    sd = math.sqrt(n * local_var)
    l2s, l1s = l2 / sd, l1 / sd
    tau = 10.0 * sum(math.exp(-2.0 * math.pi**2 * local_var * k / (k + 1)) for k in range(1, n))
    t1 = order / 2.0 * l2s**2 + tau * dim
    t2 = order / 2.0 * (l2s**2 + 2.0 * l1s * tau + tau**2 * dim)
    t3 = order / 2.0 * (l2s + math.sqrt(dim) * tau) ** 2
    return min(t1, t2, t3)


def ddg_eps(l2, local_var, n, dim, rounds, delta):
    l1 = l2 * min(math.sqrt(dim), l2)
    rdp = [rounds * ddg_rdp(a, l2, l1, local_var, n, dim) for a in ORDERS]
    return rdp_mod.compute_epsilon(ORDERS, rdp, delta)


def rounded_l2_norm_bound(c, beta, dim):
    # KLS21's bound after conditional randomized rounding, as in google-research/federated
    # distributed_dp/accounting_utils.py (integer units).
    b1 = c + math.sqrt(dim)
    if beta == 0:
        return b1
    b2 = c * c + 0.25 * dim + math.sqrt(2.0 * math.log(1.0 / beta)) * (c + 0.5 * math.sqrt(dim))
    return min(b1, math.sqrt(b2))


def main():
    from importlib.metadata import version
    print(f"# dp-accounting {version('dp-accounting')}")
    print("# gaussian: (z, rounds, delta) -> (epsilon, order)")
    for z, t, d in [(1.0, 1, 1e-5), (1.0, 10, 1e-5), (0.8, 100, 1e-6), (2.0, 50, 1e-5),
                    (5.0, 1000, 1e-7), (10.0, 1, 1e-5), (0.5, 10, 1e-3), (1.1, 100, 1e-5),
                    (1000.0, 1, 0.1)]:
        eps, order = gaussian_eps(z, t, d)
        print(f"({z!r}, {t}, {d!r}, {float(eps)!r}, {float(order)!r}),")
    print("# ddg: (l2, local_var, n, dim, rounds, delta) -> (epsilon, order)")
    for l2, var, n, dim, t, d in [(1000.0, 4.0e5, 10, 1000, 10, 1e-5),
                                  (100.0, 1.0, 10, 100, 1, 1e-5),
                                  (5000.0, 2.0e6, 100, 100000, 10, 1e-5),
                                  (20.0, 0.5, 10, 10, 1, 1e-5),
                                  (50.0, 0.8, 50, 20, 3, 1e-6)]:
        eps, order = ddg_eps(l2, var, n, dim, t, d)
        print(f"({l2!r}, {var!r}, {n}, {dim}, {t}, {d!r}, {float(eps)!r}, {float(order)!r}),")


    print("# tau: (n, local_var) -> tau")
    for n, var in [(10, 0.5), (100, 0.25), (3, 1.0)]:
        tau = 10.0 * sum(math.exp(-2.0 * math.pi**2 * var * k / (k + 1)) for k in range(1, n))
        print(f"({n}, {var!r}, {tau!r}),")
    print("# rounded l2 bound: (c, beta, dim) -> bound")
    for c, beta, dim in [(1000.0, math.exp(-0.5), 1000), (10.0, 0.0, 100), (100.0, 1e-3, 10000),
                         (5.0, 0.1, 4)]:
        print(f"({c!r}, {beta!r}, {dim}, {rounded_l2_norm_bound(c, beta, dim)!r}),")


if __name__ == "__main__":
    main()
