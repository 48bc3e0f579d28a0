# mona-pipeline: `make demo` (set up + run the main job on the demo data), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# dvc.yaml's commands run `python` from PATH: the project's.
DVC := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
# TensorFlow's C++ log on a CPU machine is only CUDA registration noise (docs/prefect.md: Quiet logs).
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
	$(DVC) add --quiet data/raw data/test
	$(DVC) repro
	rm -rf sorted/demo
	$(BIN)/mona sort data/test/images --out sorted/demo --run demo --action copy
	@$(BIN)/mona summary sorted/demo/runs/demo --evaluation

# One worker per core (-n auto); each test file stays on one worker, so its module fixtures are built once.
test: setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15

# The curriculum against its baseline over more seeds, as DVC experiments of this commit (about 32 min a seed
# on 2 cores, two side by side; seeds that already have an experiment are skipped): `dvc exp show` lists them,
# `mona compare` gives each variant's mean and spread over its seeds and the paired differences.
SEEDS ?= 1 2 3 4
compare: demo
	@existing=" $$($(DVC) exp list --name-only 2>/dev/null | tr '\n' ' ') "; \
	for seed in $(SEEDS); do \
	  case "$$existing" in *" seed-$$seed "*) echo "seed-$$seed: already an experiment of this commit";; \
	  *) $(DVC) exp run --queue --quiet -S train.seed=$$seed -n seed-$$seed;; esac; \
	done
	$(DVC) exp run --run-all --jobs 2
	$(BIN)/mona compare --markdown reports/seeds.md

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache
