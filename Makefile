# The two commands the README promises: `make demo` and `make test`.
# Everything installs into ./.venv from PyPI/npm; nothing is downloaded at run time.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml constraints.txt setup.py ddx_offchain/tree/_native.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	$(PY) -m ddx_offchain.deployment.toolchain link-vyper
	touch $(STAMP)

# ethers (an independent EIP-712 signer for the tests) and anvil (a real local node), from package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

demo: install
	$(VENV)/bin/ddx devnet --demo

# The suite on the compiled build (the install builds ddx_offchain/tree/_native.c; a missing build fails here
# instead of silently testing pure Python), then the tree's tests on the pure-Python reference. The differential
# test (tests/tree/test_compiled.py) runs both implementations side by side in either pass.
test: install
	DDX_REQUIRE_COMPILED=1 $(PY) -m pytest -q
	DDX_PURE_PYTHON=1 $(PY) -m pytest -q tests/tree

bench: install
	for b in benchmarks/*.py; do $(PY) $$b --json || exit 1; done

clean:
	rm -rf $(VENV) .build .pytest_cache build ddx_offchain/tree/_native*.so
