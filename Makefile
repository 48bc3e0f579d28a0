# mona-pipeline: `make demo` (set up + run the main job on the demo data), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
# TensorFlow's C++ log on a CPU machine is only CUDA registration noise (README: Quiet logs).
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: setup demo test bench compare clean

$(BIN)/mona: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/mona

# The main job: draw the demo data, track it with DVC, rebuild the pipeline (train, evaluate),
# then sort the demo's random archive with the trained model.
demo: setup
	$(BIN)/mona demo-data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc add --quiet data/raw data/test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro evaluate
	rm -rf sorted/demo
	$(BIN)/mona sort data/test/images --out sorted/demo --run demo --action copy
	@$(BIN)/mona summary --sort-run sorted/demo/runs/demo

test: setup
	$(BIN)/python -m pytest -q

# The three-stage model against its baseline over params.yaml's compare.seeds (about 40 min on 2 cores):
# reports/compare.md and reports/compare.json (`dvc metrics show`). Reuses the demo's data and shards.
compare: demo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro compare
	@cat reports/compare.md

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache
