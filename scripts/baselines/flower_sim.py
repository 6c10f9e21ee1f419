"""Flower 1.42: the same job on the simulation engine (Ray), plain FedAvg or SecAgg+.

The configuration of ../shared/baselines/flower-1.42.md: FedAvg of the seed's CNN (seed_common.py:
the seed's model, hyper-parameters and helpers, initial weights from seed 42 sent by the server),
n virtual clients, client i taking every n-th sample from i of data/mnist-5k; each round every
client trains 1 local epoch and validates its local model (as the seed's `train` and
`local_model_validation`), then the server averages and every client validates the aggregated
model on its test shard (federated evaluation: the seed's `aggregated_model_validation`, one round
later). `num_cpus=1` per client (n Ray actors). SecAgg+ through Flower's `SecAggPlusWorkflow` and
`secaggplus_mod`: clipping 8, quantization 2^22, modulus 2^32, `max_weight` 4000, all clients as
shares (`num_shares=1.0`: 2 at n = 2) and threshold 2 at n = 2.

A strategy wrapper records a time mark when a round's fit is configured and when its evaluation is
aggregated; the script prints one BASELINE_RESULT line for compare.sh. Flower's telemetry and Ray's
usage statistics are switched off (FLWR_TELEMETRY_ENABLED=0, RAY_USAGE_STATS_ENABLED=0).

Usage: python flower_sim.py --data DIR --mode plain|secaggplus [--rounds R] [--clients N]
"""

import os
import time

T_START = time.perf_counter()
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402
import torch.optim as optim  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.client.mod import secaggplus_mod  # noqa: E402
from flwr.common import Context, ndarrays_to_parameters  # noqa: E402
from flwr.server import LegacyContext, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: E402
from flwr.serverapp import ServerApp  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from seed_common import (  # noqa: E402
    Net,
    _train_model,
    initialize_seed,
    learning_rate,
    loaders,
    mnist_datasets,
    momentum,
    now,
    result_line,
    shard,
    validate,
)

T_IMPORTED = time.perf_counter()

# Every Ray actor loads the data once (the data folder travels in the environment).
_SHARDS = {}


def client_loaders(partition, n):
    """Partition PARTITION of N's (train, test) loaders, built once per process."""
    key = (partition, n)
    if key not in _SHARDS:
        mnist_train, mnist_test = mnist_datasets(os.environ["BASELINES_MNIST"])
        _SHARDS[key] = loaders(*shard(mnist_train, mnist_test, partition, n))
    return _SHARDS[key]


def get_weights(net):
    return [val.cpu().numpy() for _, val in net.state_dict().items()]


def set_weights(net, parameters):
    params = zip(net.state_dict().keys(), parameters)
    net.load_state_dict(OrderedDict({k: torch.tensor(v) for k, v in params}), strict=True)


class SeedClient(NumPyClient):
    """One collaborator: the seed's training and validation on its shard."""

    def __init__(self, train_loader, test_loader):
        self.net = Net()
        self.train_loader = train_loader
        self.test_loader = test_loader

    def fit(self, parameters, config):
        set_weights(self.net, parameters)
        optimizer = optim.SGD(self.net.parameters(), lr=learning_rate, momentum=momentum)
        loss = _train_model(self.net, optimizer, self.train_loader)
        local_accuracy = validate(self.net, self.test_loader)
        metrics = {"loss": float(loss), "local_accuracy": float(local_accuracy)}
        return get_weights(self.net), len(self.train_loader.dataset), metrics

    def evaluate(self, parameters, config):
        set_weights(self.net, parameters)
        accuracy = validate(self.net, self.test_loader)
        # The seed validates accuracy only; the loss slot carries 1 - accuracy.
        return 1.0 - float(accuracy), len(self.test_loader.dataset), {"accuracy": float(accuracy)}


def client_fn(context: Context):
    partition = int(context.node_config["partition-id"])
    n = int(context.node_config["num-partitions"])
    train_loader, test_loader = client_loaders(partition, n)
    return SeedClient(train_loader, test_loader).to_client()


class TimedFedAvg(FedAvg):
    """FedAvg that records when each round's fit starts and its evaluation ends."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fit_started = {}
        self.evaluated = {}
        self.accuracy = {}
        self.loss = {}

    def configure_fit(self, server_round, parameters, client_manager):
        self.fit_started[server_round] = now()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        losses = [r.metrics.get("loss") for _, r in results if r.metrics]
        losses = [v for v in losses if v is not None]
        if losses:
            self.loss[server_round] = sum(losses) / len(losses)
        return super().aggregate_fit(server_round, results, failures)

    def aggregate_evaluate(self, server_round, results, failures):
        accuracies = [r.metrics["accuracy"] for _, r in results]
        if accuracies:
            self.accuracy[server_round] = sum(accuracies) / len(accuracies)
        out = super().aggregate_evaluate(server_round, results, failures)
        self.evaluated[server_round] = now()
        return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with MNIST/raw (prepare_data.py)")
    parser.add_argument("--mode", choices=["plain", "secaggplus"], required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--num-shares", type=float, default=1.0, help="SecAgg+ shares (float: a fraction of the clients)")
    parser.add_argument("--threshold", type=int, default=2, help="SecAgg+ reconstruction threshold")
    args = parser.parse_args()
    os.environ["BASELINES_MNIST"] = os.path.abspath(args.data)

    initialize_seed()
    initial = ndarrays_to_parameters(get_weights(Net()))
    strategy = TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=args.clients,
        min_evaluate_clients=args.clients,
        min_available_clients=args.clients,
        initial_parameters=initial,
    )

    server_app = ServerApp()

    @server_app.main()
    def _server(grid, context):
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=args.rounds), strategy=strategy
        )
        if args.mode == "secaggplus":
            workflow = DefaultWorkflow(
                fit_workflow=SecAggPlusWorkflow(
                    num_shares=args.num_shares,
                    reconstruction_threshold=args.threshold,
                    max_weight=4000,
                    clipping_range=8.0,
                    quantization_range=2**22,
                    modulus_range=2**32,
                )
            )
        else:
            workflow = DefaultWorkflow()
        workflow(grid, legacy)

    mods = [secaggplus_mod] if args.mode == "secaggplus" else []
    client_app = ClientApp(client_fn=client_fn, mods=mods)

    t_run = now()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=args.clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    t_done = now()

    rounds = range(1, args.rounds + 1)
    missing = [r for r in rounds if r not in strategy.fit_started or r not in strategy.evaluated]
    if missing:
        raise SystemExit(f"flower: rounds {missing} did not finish; see the log above")
    result_line(
        system="flower",
        variant=args.mode,
        collaborators=args.clients,
        rounds=args.rounds,
        import_s=T_IMPORTED - T_START,
        run_s=t_done - t_run,
        rounds_s=[strategy.evaluated[r] - strategy.fit_started[r] for r in rounds],
        # Round r's federated evaluation validates the model aggregated in round r.
        results=[
            [r - 1, strategy.accuracy.get(r), strategy.loss.get(r)] for r in rounds
        ],
    )


if __name__ == "__main__":
    main()
