# The CPU libtorch 2.13.0 that the `torch` feature builds against, in .libtorch/ (see
# scripts/setup-libtorch.sh). Included by the Makefile; targets:
#   make libtorch           create .libtorch/ (downloads ~540 MB of wheels into .cache/wheels/
#                           once; instant when done)
#   make clean-torch        remove .libtorch/ (the wheel cache stays: re-creating takes ~5 s)
#   make clean-torch-cache  remove .libtorch/ and the wheel cache

TORCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
TORCH_DIR := $(TORCH_ROOT)/.libtorch
TORCH_STAMP := $(TORCH_DIR)/.flspec-setup-stamp

.PHONY: libtorch clean-torch clean-torch-cache

libtorch: $(TORCH_STAMP)

# The script checks the stamp's content and the files itself: re-running it is cheap and safe.
$(TORCH_STAMP): $(TORCH_ROOT)/scripts/setup-libtorch.sh
	bash $(TORCH_ROOT)/scripts/setup-libtorch.sh

clean-torch:
	rm -rf $(TORCH_DIR)

clean-torch-cache: clean-torch
	rm -rf $(TORCH_ROOT)/.cache/wheels
