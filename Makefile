# The two commands the README promises: `make demo` and `make test`.
# Everything installs into ./.venv from PyPI/npm; nothing is downloaded at run time.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
APP_STAMP  := ddx_offchain/api/app/vendor/.built

.PHONY: install demo test bench clean browser

# The compiled engine is built from the engine's .py files (setup.py, mypyc): editing one rebuilds it.
$(STAMP): pyproject.toml constraints.txt setup.py ddx_offchain/tree/_native.c $(wildcard ddx_offchain/engine/*.py)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	$(PY) -m ddx_offchain.deployment.toolchain link-vyper
	touch $(STAMP)

# ethers (the JS client's and the app's EIP-712 signer), anvil (a real local node), lightweight-charts (the app's
# chart) and playwright-core (drives the system chromium in the browser tests; downloads no browser), from
# package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The web app's vendor/ folder: the libraries' own ES-module builds and the JS client, copied into the package.
$(APP_STAMP): $(NODE_STAMP) clients/js/build.mjs $(wildcard clients/js/src/*.mjs)
	node clients/js/build.mjs

install: $(STAMP) $(NODE_STAMP) $(APP_STAMP)

# The browser tests drive Debian's chromium (never a browser downloaded by Playwright). Installed when make runs as
# root with apt-get; otherwise this says so and tests/app/test_browser.py fails with the same advice.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$DDX_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null \
	      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  else echo "chromium is not installed and this is not root: run 'sudo apt-get install chromium' (the browser tests need it)"; fi; }

demo: install
	$(VENV)/bin/ddx devnet --demo

# The suite on the compiled build (the install builds ddx_offchain/tree/_native.c and the compiled engine; a missing
# build fails here instead of silently testing pure Python), then the tree's and the engine's tests (the golden
# scenario among them) on the pure-Python reference. The differential tests (tests/tree/test_compiled.py,
# tests/engine/test_compiled_engine.py) compare both implementations in either pass.
test: install browser
	DDX_REQUIRE_COMPILED=1 $(PY) -m pytest -q
	DDX_PURE_PYTHON=1 $(PY) -m pytest -q tests/tree tests/engine

bench: install
	for b in benchmarks/*.py; do $(PY) $$b --json || exit 1; done

clean:
	rm -rf $(VENV) .build .pytest_cache build ddx_offchain/tree/_native*.so ddx_offchain/engine/*.so
