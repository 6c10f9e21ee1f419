"""The raw PyTorch loop: the seed's own PyTorch code, without any framework.

Per round and per collaborator, what the seed flow does: a copy of the global model, validated
on the collaborator's test shard, trained one epoch on its train shard with a fresh SGD optimizer,
validated again; then the seed's FedAvg of the collaborators' models. No secure aggregation: this
is the floor a Python user gets for the same training work. Model, data and helpers are those of
seed_common.py; the run prints one BASELINE_RESULT line for compare.sh.

Usage: python raw_torch.py --data DIR [--rounds R] [--collaborators N]
"""

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
from copy import deepcopy  # noqa: E402

import torch.optim as optim  # noqa: E402

from seed_common import (  # noqa: E402
    FedAvg,
    Net,
    _train_model,
    initialize_seed,
    learning_rate,
    loaders,
    mnist_datasets,
    momentum,
    now,
    result_line,
    round_durations,
    shard,
    validate,
)

T_IMPORTED = time.perf_counter()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with MNIST/raw (prepare_data.py)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--collaborators", type=int, default=2)
    args = parser.parse_args()

    mnist_train, mnist_test = mnist_datasets(args.data)
    n = args.collaborators
    shards = [loaders(*shard(mnist_train, mnist_test, i, n)) for i in range(n)]

    t_run = now()
    initialize_seed()
    model = Net()
    results = []
    marks = [now()]
    for current_round in range(args.rounds):
        local_models, agg_scores, losses, local_scores = [], [], [], []
        for train_loader, test_loader in shards:
            local = deepcopy(model)
            agg_scores.append(validate(local, test_loader))
            optimizer = optim.SGD(local.parameters(), lr=learning_rate, momentum=momentum)
            losses.append(_train_model(local, optimizer, train_loader))
            local_scores.append(validate(local, test_loader))
            local_models.append(local)
        model = FedAvg(model, local_models)
        results.append(
            [current_round, sum(agg_scores) / n, sum(losses) / n, sum(local_scores) / n]
        )
        print(
            f"round {current_round}: agg {results[-1][1]:.4f} loss {results[-1][2]:.4f} "
            f"local {results[-1][3]:.4f}",
            flush=True,
        )
        marks.append(now())
    t_done = now()

    result_line(
        system="torch",
        variant="raw",
        collaborators=n,
        rounds=args.rounds,
        import_s=T_IMPORTED - T_START,
        run_s=t_done - t_run,
        rounds_s=round_durations(marks),
        results=results,
    )


if __name__ == "__main__":
    main()
