"""OpenFL 1.9: the seed flow, "Secure Aggregation with MNIST", on LocalRuntime (single process).

The flow is the tutorial's (../shared/reference/openfl-secagg-mnist-tutorial.txt, cells 5-7 and
the LocalRuntime cell) step for step, with these differences only:
- the data are data/mnist-5k (see seed_common.py), the model code is in seed_common.py;
- `checkpoint=False` (the tutorial writes `checkpoint=True`; `--checkpoint` restores it);
- `--rounds` and `--collaborators` (defaults 2 and 2, as the tutorial: Bengaluru and Portland);
- the aggregator records a time mark when round 0 starts (end of `reconstruct`) and at every
  `join`, and the script prints one BASELINE_RESULT line (import, set-up, run and round times,
  and the accuracies) for compare.sh.
The tutorial's `print(seed_shares, key_shares)` in `reconstruct` is kept: it is the work the seed
does (the keys are throwaway keys of this run).

Usage: python openfl_seed_flow.py --data DIR [--rounds R] [--collaborators N] [--checkpoint]
"""

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import random  # noqa: E402
import struct  # noqa: E402

import torch.optim as optim  # noqa: E402
from Crypto.PublicKey import ECC  # noqa: E402
from openfl.experimental.workflow.interface import FLSpec  # noqa: E402
from openfl.experimental.workflow.interface import Aggregator, Collaborator  # noqa: E402
from openfl.experimental.workflow.placement import aggregator, collaborator  # noqa: E402
from openfl.experimental.workflow.runtime import LocalRuntime  # noqa: E402
from openfl.utilities.secagg import (  # noqa: E402
    calculate_mask,
    create_ciphertext,
    create_secret_shares,
    decipher_ciphertext,
    generate_agreed_key,
    reconstruct_secret,
)

from seed_common import (  # noqa: E402
    FedAvg,
    Net,
    _train_model,
    batch_size,
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


def masked_train_model(
    model, optimizer, data_loader,
    collaborator_index, agreed_keys, private_seed,
):
    """
    Helper function to perform training of the model giving masked input
    vector instead of loss directly.
    """
    loss = _train_model(model, optimizer, data_loader)
    collaborator_mask = calculate_mask(collaborator_index, agreed_keys, private_seed)

    return loss + collaborator_mask


class SecureAggregation_MNIST(FLSpec):
    """
    Federated Flow to train a CNN on MNIST dataset using Secure Aggregation
    """

    def __init__(self, model=None, optimizer=None, learning_rate=1e-2, momentum=0.5, rounds=3, **kwargs):
        super().__init__(**kwargs)

        if model is not None:
            self.model = model
            self.optimizer = optimizer
        else:
            initialize_seed()
            self.model = Net()
            self.optimizer = optim.SGD(self.model.parameters(), lr=learning_rate, momentum=momentum)

        self.learning_rate = learning_rate
        self.momentum = momentum
        self.rounds = rounds
        self.results = []
        self.collaborator_secagg_data = {}
        # compare.sh: time marks (start of round 0, then the end of every round).
        self.round_marks = []

    @aggregator
    def start(self):
        """
        This is the start of the Flow.
        """
        print(f"Initializing Workflow .... ")

        self.collaborators = self.runtime.collaborators
        self.collaborator_count = len(self.collaborators)
        self.current_round = 0

        self.next(self.generate_keys, foreach="collaborators")

    @collaborator
    def generate_keys(self):
        """
        Receives the collaborator IDs for all the collaborators.
        Shares the public keys of the key pairs generated as private
        attributes with the aggregator.
        """
        print(f"<Collab: {self.input}> generating key pairs for secure aggregation...")
        self.public_key = [
            ECC.import_key(pvt_key).public_key().export_key(format="PEM")
            for pvt_key in self.private_key
        ]

        self.next(self.generate_collaborator_index)

    @aggregator
    def generate_collaborator_index(self, inputs):
        """
        Shares the collaborators' public keys with all the collaborators
        in the experiment.
        """
        print(f"<Agg>: Generating unique indices for collaborators...")
        index = 1
        for input in inputs:
            self.collaborator_secagg_data[input.input] = {
                "index": index,
                "public_key": input.public_key
            }
            index += 1

        self.next(self.generate_ciphertexts, foreach="collaborators")

    @collaborator
    def generate_ciphertexts(self):
        """
        Generates the ciphertexts for all the other collaborators.
        """
        print(f"<Collab: {self.input}> generating ciphertexts for secure aggregation...")
        for collab in self.collaborator_secagg_data:
            index = self.collaborator_secagg_data[collab]["index"]
            if self.collaborator_secagg_data[collab]["public_key"][0] == self.public_key[0]:
                self.index = index
                break

        self.agreed_key = {}
        self.cipher_verification = {}
        self.ciphers = {}

        seed_shares = create_secret_shares(
            struct.pack("d", self.private_seed),
            self.collaborator_count,
            self.collaborator_count,
        )

        key_shares = create_secret_shares(
            str.encode(ECC.import_key(self.private_key[0]).export_key(format="PEM")),
            self.collaborator_count,
            self.collaborator_count,
        )

        for collab in self.collaborator_secagg_data:
            self.collaborator_secagg_data[collab]["ciphertext_from"] = {}
            collab_index = self.collaborator_secagg_data[collab]["index"]
            self.agreed_key[collab_index] = [
                generate_agreed_key(
                    self.private_key[0],
                    self.collaborator_secagg_data[collab]["public_key"][0]
                ),
                generate_agreed_key(
                    self.private_key[1],
                    self.collaborator_secagg_data[collab]["public_key"][1]
                )
            ]
            ciphertext, mac, nonce = create_ciphertext(
                self.agreed_key[collab_index][0],
                self.index,
                collab_index,
                seed_shares[collab_index],
                key_shares[collab_index]
            )
            self.collaborator_secagg_data[collab]["ciphertext_from"][self.index] = [ciphertext, mac, nonce]

        self.next(self.filter_ciphertexts)

    @aggregator
    def filter_ciphertexts(self, inputs):
        """
        Receives ciphertexts from all collaborators and filters them for each collaborator
        that they are addressed to.
        """
        for input in inputs:
            for collab in input.collaborator_secagg_data:
                if "ciphertext_from" not in self.collaborator_secagg_data[collab]:
                    self.collaborator_secagg_data[collab]["ciphertext_from"] = input.collaborator_secagg_data[collab]["ciphertext_from"]
                else:
                    self.collaborator_secagg_data[collab]["ciphertext_from"].update(
                        input.collaborator_secagg_data[collab]["ciphertext_from"]
                    )

        self.next(self.decrypt_ciphertext, foreach="collaborators")

    @collaborator
    def decrypt_ciphertext(self):
        """
        Receives the ciphertexts addressed to it and deciphers them.
        Shares the deciphered values with the aggregator.
        """
        print(f"<Collab: {self.input}> decrypting ciphertexts for secure aggregation... ")
        self.seed_shares = {}
        self.key_shares = {}
        for collab in self.collaborator_secagg_data:
            if self.collaborator_secagg_data[collab]["index"] == self.index:
                addressed_ciphertexts = self.collaborator_secagg_data[collab].get("ciphertext_from", {})
                for source_id in addressed_ciphertexts:
                    source_public_key = [
                        self.collaborator_secagg_data[collab]["public_key"][0]
                        if self.collaborator_secagg_data[collab]["index"] == source_id
                        else None
                        for collab in self.collaborator_secagg_data
                    ]
                    source_public_key = list(filter(None, source_public_key))[0]
                    _, _, seed_share, key_share = decipher_ciphertext(
                        generate_agreed_key(
                            self.private_key[0],
                            source_public_key
                        ),
                        addressed_ciphertexts[source_id][0],
                        addressed_ciphertexts[source_id][1],
                        addressed_ciphertexts[source_id][2],
                    )
                    self.seed_shares[source_id] = [self.index, str(seed_share)]
                    self.key_shares[source_id] = [self.index, str(key_share)]

        self.next(
            self.reconstruct,
            exclude=["agreed_key", "cipher_verification"]
        )

    @aggregator
    def reconstruct(self, inputs):
        """
        Reconstructs the secrets for all the collaborators
        which are required for unmasking during aggregation.
        """
        print(f"<Agg>: Reconstructing secrets for secure aggregation...")
        seed_shares = {}
        key_shares = {}
        for input in inputs:
            for source_id in input.seed_shares:
                if source_id not in seed_shares:
                    seed_shares[source_id] = {}
                seed_shares[source_id][input.seed_shares[source_id][0]] = input.seed_shares[source_id][1][2:-1]
            for source_id in input.key_shares:
                if source_id not in key_shares:
                    key_shares[source_id] = {}
                key_shares[source_id][input.key_shares[source_id][0]] = input.key_shares[source_id][1][2:-1]

        self._private_seeds = {}
        self._private_keys = {}
        print(seed_shares, key_shares)
        for source_id in seed_shares:
            self._private_seeds[source_id] = struct.unpack("d", reconstruct_secret(seed_shares[source_id]))[0]
            self._private_keys[source_id] = reconstruct_secret(key_shares[source_id])

        self.agreed_keys = {}
        for source in self.collaborator_secagg_data:
            source_index = self.collaborator_secagg_data[source]["index"]
            source_private_key = self._private_keys[source_index]
            self.agreed_keys[source_index] = {}
            for dest in self.collaborator_secagg_data:
                dest_index = self.collaborator_secagg_data[dest]["index"]
                dest_public_key = self.collaborator_secagg_data[dest]["public_key"][0]
                self.agreed_keys[source_index][dest_index] = [dest, generate_agreed_key(
                    source_private_key,
                    dest_public_key
                )]

        self.round_marks.append(now())
        self.next(self.aggregated_model_validation, foreach="collaborators")

    @collaborator
    def aggregated_model_validation(self):
        """
        Perform validation of aggregated model on collaborators.
        """
        print(f"<Collab: {self.input}> Performing Validation on aggregated model ... ")
        self.agg_validation_score = validate(self.model, self.test_loader)
        print(
            f"<Collab: {self.input}> Aggregated Model validation score = {self.agg_validation_score:.4f}"
        )

        self.next(self.train)

    @collaborator
    def train(self):
        """
        Train model on Local collaborator dataset.
        """
        print(f"<Collab: {self.input}>: Training Model on local dataset ... ")

        self.optimizer = optim.SGD(self.model.parameters(), lr=self.learning_rate, momentum=self.momentum)

        self.loss = masked_train_model(
            self.model,
            self.optimizer,
            self.train_loader,
            self.index,
            self.agreed_keys[self.index],
            self.private_seed,
        )

        self.next(self.local_model_validation)

    @collaborator
    def local_model_validation(self):
        """
        Validate locally trained model.
        """
        print(f"<Collab: {self.input}> Performing Validation on locally trained model ... ")
        self.local_validation_score = validate(self.model, self.test_loader)
        print(
            f"<Collab: {self.input}> Local model validation score = {self.local_validation_score:.4f}"
        )
        self.next(self.join)

    @aggregator
    def join(self, inputs):
        """
        Model aggregation step.
        """
        print(f"<Agg>: Joining models from collaborators...")

        total_loss = sum(input.loss for input in inputs)
        for input in inputs:
            total_loss -= calculate_mask(input.index, self.agreed_keys[input.index], self._private_seeds[input.index])

        self.average_loss = total_loss / len(inputs)
        self.aggregated_model_accuracy = sum(input.agg_validation_score for input in inputs) / len(inputs)
        self.local_model_accuracy = sum(input.local_validation_score for input in inputs) / len(inputs)

        print(f"Avg. aggregated model validation score = {self.aggregated_model_accuracy:.4f}")
        print(f"Avg. training loss = {self.average_loss:.4f}")
        print(f"Avg. local model validation score = {self.local_model_accuracy:.4f}")

        self.model = FedAvg(self.model, [input.model for input in inputs])

        self.results.append(
            [
                self.current_round,
                self.aggregated_model_accuracy,
                self.average_loss,
                self.local_model_accuracy,
            ]
        )

        self.round_marks.append(now())
        self.current_round += 1
        if self.current_round < self.rounds:
            self.next(self.aggregated_model_validation, foreach="collaborators")
        else:
            self.next(self.end)

    @aggregator
    def end(self):
        """
        This is the last step in the Flow.
        """
        print(f"This is the end of the flow")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with MNIST/raw (prepare_data.py)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--collaborators", type=int, default=2)
    parser.add_argument("--checkpoint", action="store_true", help="as the tutorial: checkpoint=True")
    args = parser.parse_args()

    mnist_train, mnist_test = mnist_datasets(args.data)

    # Setup Aggregator & initialize private attributes
    aggregator_ = Aggregator()
    aggregator_.private_attributes = {}

    # Setup Collaborators & initialize shards of MNIST dataset as private attributes
    n_collaborators = args.collaborators
    collaborator_names = ["Bengaluru", "Portland"] + [
        f"collaborator-{i + 1:03}" for i in range(2, n_collaborators)
    ]
    collaborator_names = collaborator_names[:n_collaborators]

    collaborators = [Collaborator(name=name) for name in collaborator_names]
    for idx, collaborator_ in enumerate(collaborators):
        local_train, local_test = shard(mnist_train, mnist_test, idx, n_collaborators)
        train_loader, test_loader = loaders(local_train, local_test)
        collaborator_.private_attributes = {
            "train_loader": train_loader,
            "test_loader": test_loader,
            "private_seed": random.random(),
            "private_key": [
                ECC.generate(curve="ed25519").export_key(format="PEM"),
                ECC.generate(curve="ed25519").export_key(format="PEM"),
            ],
        }

    local_runtime = LocalRuntime(
        aggregator=aggregator_, collaborators=collaborators, backend="single_process"
    )
    print(f"Local runtime collaborators = {local_runtime.collaborators}")

    model = None
    optimizer = None
    flflow = SecureAggregation_MNIST(
        model, optimizer, learning_rate, momentum, rounds=args.rounds, checkpoint=args.checkpoint
    )
    flflow.runtime = local_runtime
    t_run = now()
    flflow.run()
    t_done = now()

    marks = flflow.round_marks
    result_line(
        system="openfl",
        variant="secagg",
        checkpoint=args.checkpoint,
        collaborators=n_collaborators,
        rounds=args.rounds,
        import_s=T_IMPORTED - T_START,
        run_s=t_done - t_run,
        setup_s=(marks[0] - t_run) if marks else None,
        rounds_s=round_durations(marks),
        results=[[float(v) for v in row] for row in flflow.results],
        batch_size=batch_size,
    )


if __name__ == "__main__":
    main()
