# Thin wrappers over the `openpipe` CLI (openpipe/stack/cli.py). See README.md.
UV ?= uv
RUN = $(UV) run --frozen

.PHONY: sync up down purge status logs test test-daemon test-unit bench chaos soak lint format

sync:
	@$(UV) sync --frozen --quiet

up: sync
	@$(RUN) openpipe up

down:
	@$(RUN) openpipe down

purge:
	@$(RUN) openpipe down --purge

status:
	@$(RUN) openpipe status

# The whole suite against the real services; brings the stack up when it is not up.
test: up
	@$(RUN) pytest

# Only the sink sessions end to end through the live daemon (terminated from Dagster,
# SIGKILLed and replaced); `make test` runs them too.
test-daemon: up
	@$(RUN) pytest -m daemon -s

test-unit: sync
	@$(RUN) pytest -m "not integration"

bench: up
	@for bench in benchmarks/*_bench.py; do echo "== $$bench"; $(RUN) python $$bench || exit 1; done

# Whole-system runs against the live stack (docs/chaos.md); not part of `make test`.
# Options go in ARGS, e.g. `make chaos ARGS="--seed 7 --duration 600"`.
chaos: up
	@$(RUN) python benchmarks/chaos.py $(ARGS)

soak: up
	@$(RUN) python benchmarks/soak.py $(ARGS)

lint: sync
	@$(RUN) ruff format --check . && $(RUN) ruff check .

format: sync
	@$(RUN) ruff format . && $(RUN) ruff check --fix .
