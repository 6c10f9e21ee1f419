"""The seed's PyTorch code, shared by the three Python baselines.

Model, helpers and hyper-parameters are those of OpenFL's "Secure Aggregation with MNIST" tutorial
(../shared/reference/openfl-secagg-mnist-tutorial.txt, cells 3, 4 and 6), unchanged except:
- the data come from the bundled 5,000-image subset (data/mnist-5k, laid out by prepare_data.py)
  through the same `torchvision.datasets.MNIST` class and transforms, with download=False;
- `F.log_softmax(x)` names its dimension (`dim=1`, the one PyTorch infers for a 2-D input, so the
  result is identical) instead of relying on the deprecated implicit choice;
- `result_line` prints one machine-readable line for compare.sh.
"""

import json
import random
import sys
import time
from copy import deepcopy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# Hyperparameters
learning_rate = 0.01
momentum = 0.5
batch_size = 32
log_interval = 10


# Model definition
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


# Helper function to validate the model
def validate(model, test_loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            pred = output.data.max(1, keepdim=True)[1]
            correct += pred.eq(target.data.view_as(pred)).sum()
    accuracy = float(correct / len(test_loader.dataset))
    return accuracy


# Helper function to train the model
def _train_model(model, optimizer, data_loader):
    train_loss = 0
    model.train()
    for _, (X, y) in enumerate(data_loader):
        optimizer.zero_grad()
        output = model(X)
        loss = F.nll_loss(output, y)
        loss.backward()
        optimizer.step()
        train_loss += loss.item() * len(X)

    train_loss /= len(data_loader.dataset)
    return train_loss


# Helper function to initialize seed for reproducibility
def initialize_seed(random_seed=42):
    torch.manual_seed(random_seed)
    np.random.seed(random_seed)
    random.seed(random_seed)


# Helper function for federated averaging
def FedAvg(agg_model, models, weights=None):
    state_dicts = [model.state_dict() for model in models]
    agg_state_dict = agg_model.state_dict()
    for key in models[0].state_dict():
        agg_state_dict[key] = torch.from_numpy(
            np.average([state[key].numpy() for state in state_dicts], axis=0, weights=weights)
        )

    agg_model.load_state_dict(agg_state_dict)
    return agg_model


def mnist_datasets(root):
    """The tutorial's train and test sets (cell 4), read from ROOT/MNIST/raw without download."""
    transform = torchvision.transforms.Compose(
        [
            torchvision.transforms.ToTensor(),
            torchvision.transforms.Normalize((0.1307,), (0.3081,)),
        ]
    )
    mnist_train = torchvision.datasets.MNIST(root, train=True, download=False, transform=transform)
    mnist_test = torchvision.datasets.MNIST(root, train=False, download=False, transform=transform)
    return mnist_train, mnist_test


def shard(mnist_train, mnist_test, idx, n_collaborators):
    """Collaborator IDX's shards, as the tutorial's LocalRuntime cell builds them."""
    local_train = deepcopy(mnist_train)
    local_test = deepcopy(mnist_test)
    local_train.data = mnist_train.data[idx::n_collaborators]
    local_train.targets = mnist_train.targets[idx::n_collaborators]
    local_test.data = mnist_test.data[idx::n_collaborators]
    local_test.targets = mnist_test.targets[idx::n_collaborators]
    return local_train, local_test


def loaders(local_train, local_test):
    """The tutorial's (unshuffled) data loaders."""
    return (
        torch.utils.data.DataLoader(local_train, batch_size=batch_size, shuffle=False),
        torch.utils.data.DataLoader(local_test, batch_size=batch_size, shuffle=False),
    )


def round_durations(marks):
    """Durations between consecutive time marks: [m1 - m0, m2 - m1, ...]."""
    return [b - a for a, b in zip(marks, marks[1:])]


def result_line(**fields):
    """Prints the line compare.sh reads: `BASELINE_RESULT {json}`."""
    fields.setdefault("torch_threads", torch.get_num_threads())
    fields.setdefault("torch", torch.__version__)
    print("BASELINE_RESULT " + json.dumps(fields), flush=True)
    sys.stdout.flush()


def now():
    """A monotonic clock in seconds."""
    return time.perf_counter()
