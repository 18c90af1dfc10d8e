# Two entry points: `make demo` runs wispbill on its embedded defaults, `make test` runs the suite.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
PORTAL_PORT ?= 8081
LAB_PORT    ?= 8728
export WISPBILL_DATA_DIR ?= ./var

.PHONY: demo test install clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q python3-venv; \
	  else sudo apt-get update -q && sudo apt-get install -y -q python3-venv; fi; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	@umask 077; mkdir -p "$(WISPBILL_DATA_DIR)"; \
	  out="$$($(BIN)/wispbill init --demo --demo-router mikrotik@127.0.0.1:$(LAB_PORT))" || exit 1; \
	  printf '%s\n' "$$out" | grep -v -e "^admin password" -e "^portal password"; \
	  if printf '%s\n' "$$out" | grep -q "^admin password"; then \
	    printf '%s\n' "$$out" | grep -e "^admin" -e "^portal" > "$(WISPBILL_DATA_DIR)/demo-login.txt"; fi
	@echo "---"; echo "Sign in at http://$(HOST):$(PORT)/ (staff) and http://$(HOST):$(PORT)/portal/ (customer) with:"; \
	  cat "$(WISPBILL_DATA_DIR)/demo-login.txt" 2>/dev/null || echo "(the admin created earlier)"; echo "---"
	@# The lab router and the scheduler run beside the web app and stop with it.
	@$(BIN)/wispbill lab router --port $(LAB_PORT) --state "$(WISPBILL_DATA_DIR)/lab-router.json" & lab=$$!; \
	  $(BIN)/wispbill scheduler & sched=$$!; \
	  trap 'kill $$lab $$sched 2>/dev/null; wait' EXIT INT TERM; \
	  $(BIN)/wispbill serve --host $(HOST) --port $(PORT) --portal-port $(PORTAL_PORT)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
