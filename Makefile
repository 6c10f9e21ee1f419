# flspec: the two commands are `make demo` (the SecAgg MNIST flow on the bundled data) and
# `make test` (format check, clippy -D warnings, the docs without a warning, every test and
# doctest, the flow graphs rendered by Mermaid and Graphviz). Both set up what they need: a
# project-local CPU libtorch 2.13.0 in .libtorch/ (scripts/setup-libtorch.sh); `make test` also
# Mermaid's CLI, Chromium and Graphviz (scripts/setup-render-tools.sh).

SHELL := /bin/bash
CARGO ?= cargo
ARGS ?=

include scripts/torch.mk

.PHONY: demo demo-federated test test-core lint lint-core bench doc doc-check render-tools python-check clean-torch

## The main job: SecAgg MNIST, 2 collaborators, on the bundled 5,000-image MNIST subset.
demo: libtorch
	$(CARGO) run --release --example secagg_mnist -- $(ARGS)

## The same flow through a director and two envoys over mutual TLS on 127.0.0.1.
demo-federated: libtorch
	bash scripts/demo-federated.sh $(ARGS)

## Everything CI runs. The graph rendering tests need Mermaid's CLI, Chromium and Graphviz:
## `render-tools` installs them (or says why it cannot; those tests then skip, saying why).
test: libtorch lint render-tools python-check doc-check
	python3 -m unittest discover -s scripts/baselines -p 'test_*.py'
	$(CARGO) test --workspace

lint: libtorch
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The crates that need no libtorch (DSL, runtimes, SecAgg), without the torch set-up.
test-core: lint-core render-tools
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --no-default-features
	$(CARGO) test --workspace --no-default-features

lint-core:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --no-default-features -- -D warnings

bench: libtorch
	$(CARGO) bench --workspace

doc:
	$(CARGO) doc --workspace --no-deps --no-default-features

## The docs build without a warning (broken or private links included), without and with the
## default features.
doc-check: libtorch
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --no-default-features
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## safetensors, numpy and TensorBoard in .venv-check/, for the tests that read our model exports
## and event files with the reference Python readers (they skip, saying why, where it cannot).
python-check:
	bash scripts/setup-python-check.sh

## Mermaid's CLI (tools/render, npm ci), Chromium and Graphviz for the graph rendering tests.
render-tools:
	bash scripts/setup-render-tools.sh
