# The two commands of the README: `make demo` and `make test`. Both build .venv themselves (so does `make bench`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench venv clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "fairq needs Python 3.10+"' \
	  || { echo "make: fairq needs Python 3.10 or newer as '$(PYTHON)'"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "make: cannot create a venv; on Debian/Ubuntu run: sudo apt-get install -y python3-venv"; exit 1; }
	@$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python

demo: venv
	@$(BIN)/python -m pip install -q -e .
	@scripts/ensure-rabbitmq
	$(BIN)/fairq demo

test: venv
	@$(BIN)/python -m pip install -q -e '.[test]'
	@scripts/ensure-rabbitmq
	$(BIN)/python -m pytest

# fairq against Celery and Dramatiq (issue 4), about 34 min; e.g. BENCH_ARGS="--quick --only drain" to iterate.
bench: venv
	@$(BIN)/python -m pip install -q -e '.[bench]'
	@scripts/ensure-rabbitmq
	$(BIN)/python benchmarks/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache fairq-demo.png
