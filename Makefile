# README's commands. Everything runs from .venv, created on first use from requirements.lock.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := shared/pyproject.toml runtime/pyproject.toml services/producer/pyproject.toml \
	services/aggregator/pyproject.toml services/ops/pyproject.toml devstack/pyproject.toml

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck unit integration real images faults soak bench \
	bench-quick schema lock env report clean terraform

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo
	@echo "  Commands in $(BIN)/ after make install (each has --help):"
	@echo "  clickstream-stack    the embedded broker and PostgreSQL for hand-run services (--real: Apache Kafka, Connect, OpenSearch)"
	@echo "  clickstream-producer, clickstream-aggregator, clickstream-report, clickstream-verify,"
	@echo "  clickstream-check, clickstream-setup, clickstream-env, clickstream-demo, clickstream-bench"

$(STAMP): requirements.lock $(PACKAGES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@touch $@

install: $(STAMP) ## create .venv with the services, tools and tests (pinned by requirements.lock)

demo: $(STAMP) ## the pipeline on an embedded broker and PostgreSQL, then the report (DEMO_ARGS="--chaos", "--help")
	$(BIN)/clickstream-demo $(DEMO_ARGS)

test: $(STAMP) lint typecheck ## lint, types, unit, integration and fault tests against real servers
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict on every package
	$(BIN)/mypy

unit: $(STAMP) ## fast, pure tests only
	$(BIN)/pytest tests/unit tests/contract $(PYTEST_ARGS)

integration: $(STAMP) ## tests against the embedded broker and PostgreSQL
	$(BIN)/pytest -m "integration and not faults and not real and not images" $(PYTEST_ARGS)

real: $(STAMP) ## tests on Apache Kafka, Kafka Connect and OpenSearch (Java 17+; jars cached in .cache/jvm)
	$(BIN)/pytest -m real $(PYTEST_ARGS)

images: $(STAMP) ## build the service images with podman (cached in .cache/images) and run them
	$(BIN)/pytest -m images $(PYTEST_ARGS)

faults: $(STAMP) ## the exactly-once fault suite
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

soak: $(STAMP) ## the long fault-suite variant (not part of make test)
	$(BIN)/pytest -m soak --run-soak tests/integration/test_exactly_once.py $(PYTEST_ARGS)

bench: $(STAMP) ## the performance table (several minutes)
	$(BIN)/clickstream-bench $(BENCH_ARGS)

bench-quick: $(STAMP) ## a smaller benchmark for development (about two minutes here)
	$(BIN)/clickstream-bench --quick $(BENCH_ARGS)

schema: $(STAMP) ## regenerate shared/event.schema.json from the model
	$(BIN)/python -m clickstream_schema.jsonschema shared/event.schema.json

terraform: $(STAMP) ## terraform fmt -check and validate, offline (providers from .cache/terraform/providers)
	$(BIN)/python -m clickstream_devstack.terraform

env: $(STAMP) ## write .env from `terraform output -json` (FORCE=1 to overwrite)
	$(BIN)/clickstream-env --terraform-dir terraform $(if $(FORCE),--force)

report: $(STAMP) ## print the analytics report from the configured PostgreSQL
	$(BIN)/clickstream-report

lock: ## re-pin requirements.lock from requirements.in (needs uv)
	uv pip compile requirements.in -o requirements.lock --python-version 3.11 --no-header

clean: ## remove .venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo
