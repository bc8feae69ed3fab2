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

# Where no RabbitMQ answers and none can be started (ensure-rabbitmq exits 3), the demo runs on the
# embedded SQLite broker and says so; fairq itself never falls back from a configured broker.
DEMO_DB := $(CURDIR)/.fairq-demo.db

demo: venv
	@$(BIN)/python -m pip install -q -e .
	@rc=0; scripts/ensure-rabbitmq demo || rc=$$?; \
	if [ $$rc = 3 ]; then \
	  echo "make demo: no RabbitMQ here and none can be started: running on the embedded SQLite broker (sqlite://$(DEMO_DB)); sudo apt-get install -y rabbitmq-server for RabbitMQ"; \
	  exec $(BIN)/fairq demo --broker "sqlite://$(DEMO_DB)"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi; \
	echo "$(BIN)/fairq demo"; exec $(BIN)/fairq demo

# Where no RabbitMQ can be had (exit 3, never in CI), the RabbitMQ tests skip and say why; the rest run.
# Test files run in TEST_WORKERS processes at once (pytest-xdist, one file per process: a file's
# private nodes and module fixtures stay together); most of the time goes in waiting on brokers.
TEST_WORKERS ?= 3

test: venv
	@$(BIN)/python -m pip install -q -e '.[test]'
	@rc=0; scripts/ensure-rabbitmq test || rc=$$?; [ $$rc = 0 ] || [ $$rc = 3 ] || exit $$rc
	@scripts/ensure-chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

# fairq against Celery and Dramatiq (issue 4), about 34 min; e.g. BENCH_ARGS="--quick --only drain" to iterate.
bench: venv
	@$(BIN)/python -m pip install -q -e '.[bench]'
	@scripts/ensure-rabbitmq bench
	$(BIN)/python benchmarks/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache fairq-demo.png .fairq-demo.db .fairq-demo.db-wal .fairq-demo.db-shm
