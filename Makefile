# The project's entry points. The virtualenv is made and filled on first use; later runs reuse it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.installed
SERVICE ?= gateway_svc

.PHONY: install up down status logs test lint contracts contracts-refresh format clean demo dlq bench faults soak bench-tracing bench-cluster bench-replicas

install: $(READY)

$(READY): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the project into $(VENV) ..."
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

up: $(READY)  ## start Kafka, PostgreSQL, the six services and the gateway; returns when all are ready
	@$(PY) -m stack up

down: $(READY)  ## stop everything `up` started
	@$(PY) -m stack down

status: $(READY)  ## each process and whether it is ready
	@$(PY) -m stack status

logs: $(READY)  ## follow one log: make logs SERVICE=order_svc (or kafka, postgres)
	@$(PY) -m stack logs $(SERVICE)

test: $(READY)  ## every test, against a real Kafka and a real PostgreSQL
	@$(PY) -m pytest

lint: $(READY)  ## ruff, mypy, import contracts, the event contracts' gate, and compose.yaml's syntax (alone and as a cluster)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .
	$(VENV)/bin/lint-imports
	$(PY) -m stack.contracts
	@# compose.yaml requires these three from the environment; dummies suffice to check its syntax
	export JWT_SECRET="$${JWT_SECRET:-syntax-check}" SHOP_ADMIN_EMAIL="$${SHOP_ADMIN_EMAIL:-a@example.com}" \
	  SHOP_ADMIN_PASSWORD="$${SHOP_ADMIN_PASSWORD:-syntax-check}" && \
	  docker-compose -f compose.yaml config --quiet && \
	  docker-compose -f compose.yaml --env-file compose.cluster.env config --quiet

contracts: $(READY)  ## released messages unchanged for their consumers; docs/asyncapi.json up to date
	@$(PY) -m stack.contracts

contracts-refresh: $(READY)  ## after a compatible change: rewrite schemas/snapshots/ and docs/asyncapi.json
	@$(PY) -m stack.contracts --refresh $(ARGS)

format: $(READY)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean: down  ## remove the data folders and logs (keeps the jars and the virtualenv)
	@# a bench variant's stack that an interrupted run left up, stopped before its folder goes
	@for d in .cache/variants/*/*/run; do [ ! -d "$$d" ] || SHOP_STATE_DIR="$${d%/run}" $(PY) -m stack down; done
	rm -rf .cache/kafka .cache/kafka-[0-9] .cache/postgres .cache/logs .cache/run .cache/test-stack \
	  .cache/secrets/kafka .cache/kcat.conf .cache/variants

demo: $(READY)  ## a small catalog and a few orders through the gateway, timelines printed live
	@$(PY) -m stack.demo

dlq: $(READY)  ## dead letters with their reasons; re-drive: make dlq ARGS="redrive order_svc 3 4"
	@$(PY) -m stack dlq $(ARGS)

faults: $(READY)  ## every fault case under a stream of orders (2,000+ orders), then a short soak; figures at the end
	@SHOP_FAULTS_CASES=all SHOP_FAULTS_RATE=$${SHOP_FAULTS_RATE:-12} SHOP_FAULTS_SECONDS=$${SHOP_FAULTS_SECONDS:-14} \
	  SHOP_FAULTS_MIN_ORDERS=2000 $(PY) -m pytest tests/faults -m faults

soak: $(READY)  ## 100,000 orders at 60/s under random faults, checked every 10,000: SHOP_SOAK_ORDERS, SHOP_SOAK_RATE
	@$(PY) -m tests.faults.soak

bench: $(READY)  ## baselines, then orders stepped up to the knee, then reads: make bench ARGS=--quick
	@$(PY) -m bench $(ARGS)

bench-tracing: $(READY)  ## the bench with tracing off, on at 100% and at 10%, back to back: make bench-tracing ARGS=--quick
	@$(PY) -m bench.variants tracing $(ARGS)

bench-cluster: $(READY)  ## the bench on one broker, then three with SCRAM, then those with two processes of each service
	@$(PY) -m bench.variants cluster --warmup-seconds 60 --warmup-rate 10 $(ARGS)

bench-replicas: $(READY)  ## the bench with 1, 2 and 3 processes of payment_svc, the busiest service
	@$(PY) -m bench.variants replicas $(ARGS)
