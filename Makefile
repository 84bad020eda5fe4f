# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   install into .venv and run fhircare's main job on the embedded FHIR server
#   make test   install into .venv and run lint, type checks and the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

MEDPLUM := tests/servers/medplum
MEDPLUM_STAMP := $(MEDPLUM)/node_modules/.installed

.PHONY: demo test system-deps test-servers test-browser-deps lint typecheck pytest pytest-shifted bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,web,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fhircare demo

system-deps:
	bash scripts/system-deps.sh

# the second FHIR server of the suite: Medplum's FHIR router on Node (exact versions in its lock file)
$(MEDPLUM_STAMP): $(MEDPLUM)/package-lock.json
	npm ci --prefix $(MEDPLUM) --no-audit --no-fund --loglevel=error
	touch $(MEDPLUM_STAMP)

test-servers: $(MEDPLUM_STAMP)

# axe-core for the browser tests' accessibility checks (exact version in its lock file)
BROWSER_JS := tests/browser
BROWSER_JS_STAMP := $(BROWSER_JS)/node_modules/.installed
$(BROWSER_JS_STAMP): $(BROWSER_JS)/package-lock.json
	npm ci --prefix $(BROWSER_JS) --no-audit --no-fund --loglevel=error
	touch $(BROWSER_JS_STAMP)

test-browser-deps: $(BROWSER_JS_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check fhircare tests benchmarks
	$(BIN)/ruff format --check fhircare tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy fhircare

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

# The server-facing workflow, fault, hostile-input and acceptance tests once more with the whole world's
# clock moved ahead (Debian's faketime preloads into pytest and every server, CLI and browser it
# starts), so a fixture bound to a calendar date fails the day it is written, not the day it expires.
SHIFTS ?= +400d +10y
# (acceptance first, as in the whole suite)
SHIFTED_TESTS := tests/acceptance tests/integration/workflows tests/integration/test_workflows_all.py \
	tests/integration/test_workflows_core.py tests/integration/test_reliability.py \
	tests/integration/test_hostile_input.py tests/integration/test_gaps_and_caseload.py
pytest-shifted: $(STAMP)
	@command -v faketime >/dev/null || { echo "pytest-shifted: faketime is missing (scripts/system-deps.sh installs it)" >&2; exit 1; }
	@for shift in $(SHIFTS); do \
	  echo "== the clock moved $$shift: $$(faketime -f "$$shift" date -u +%F)"; \
	  FHIRCARE_CLOCK_SHIFTED="$$shift" faketime -f "$$shift" $(BIN)/python -m pytest -q -p no:cacheprovider $(SHIFTED_TESTS) || exit $$?; \
	done

test: system-deps test-servers test-browser-deps lint typecheck pytest pytest-shifted

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(MEDPLUM)/node_modules $(BROWSER_JS)/node_modules
