# Catalog Sync: shortcuts. Each target calls the same script the README names,
# so `make X` and the README command always do the same thing.
#
#   make run           Airflow standalone with the demo (scripts/run_demo.sh)
#   make test          the test suite (scripts/test.sh); extra args: make test ARGS="-k diff"
#   make bench         the benchmark (benchmarks/bench_sync.py); extra args: ARGS="...",
#                      e.g. ARGS="--profile large" (Magento's toolkit profile, to the reference receiver)
#   make bench-extract the extraction benchmark on MariaDB (benchmarks/bench_extract.py)
#   make bench-export  the export benchmark against the reference receiver (benchmarks/bench_export.py)
#   make bench-ui      the plugin page's queries on 1,000,000 synced items (benchmarks/bench_ui_queries.py)
#   make bench-table-format  our snapshot layout against Delta Lake (benchmarks/bench_table_format.py)
#   make venv          create/refresh .venv only
#   make constraints   re-resolve constraints.txt in a fresh, throw-away venv
#   make clean         remove .demo/, caches and the .venv stamp (forces a re-install)
#   make distclean     clean, and remove .venv too

SHELL := /bin/bash
PYTHON ?= python3
ARGS ?=

.PHONY: run test bench bench-extract bench-export bench-ui bench-table-format venv constraints clean distclean

run:
	scripts/run_demo.sh $(ARGS)

test:
	scripts/test.sh $(ARGS)

bench: venv
	.venv/bin/python benchmarks/bench_sync.py $(ARGS)

# Full extract of 300k and 30k products x 2 store views from MariaDB (generated once).
bench-extract: venv
	.venv/bin/python benchmarks/bench_extract.py $(ARGS)

# Full sync of 100k x 2 to the reference receiver (validation off); ARGS="--rpm 300" for the default limit.
bench-export: venv
	.venv/bin/python benchmarks/bench_export.py $(ARGS)

bench-ui: venv
	.venv/bin/python benchmarks/bench_ui_queries.py $(ARGS)

# Installs deltalake (benchmarks/requirements.txt) into .venv: the sync never imports it.
bench-table-format: venv
	.venv/bin/pip install -q -r benchmarks/requirements.txt
	.venv/bin/python benchmarks/bench_table_format.py $(ARGS)

venv:
	scripts/bootstrap_venv.sh

# Resolves requirements.txt + requirements-test.txt from scratch (no constraints)
# in a temporary venv and pins the whole tree. The editable catalog-sync package
# is never installed there, so it cannot end up in the file.
constraints:
	@set -euo pipefail; \
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	echo "[constraints] resolving in a fresh venv ($$($(PYTHON) -V 2>&1))"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-test.txt; \
	{ echo "# Full pinned tree, resolved on Python $$("$$tmp/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') (pip freeze). Regenerate with: make constraints"; \
	  "$$tmp/venv/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable \
		| grep -viE '^(catalog[-_]sync)([=@ ]|$$)'; \
	} > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" constraints.txt; \
	echo "[constraints] wrote constraints.txt ($$(grep -vc '^#' constraints.txt) pins)"

clean:
	rm -rf .demo .pytest_cache test-artifacts
	rm -f .venv/.catalog-sync-bootstrap.stamp
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv
