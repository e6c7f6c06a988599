# labres: two commands for a fresh machine with python3, make and git.
#   make demo   the whole portal (web, Celery worker and beat) on SQLite and a folder broker
#   make test   the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# LDAP sign-in builds python-ldap from source (a C compiler, libldap2-dev, libsasl2-dev). Without them
	@# the LDAP tests skip, except in CI (CI=true), where .ci/run installs them and a missing one fails.
	$(BIN)/python -m pip install --quiet -e '.[test,ldap]' || { [ "$$CI" != true ] && \
	  echo "labres: python-ldap could not be built (apt-get install gcc libldap2-dev libsasl2-dev); the LDAP tests will skip."; }
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

demo: export DEBUG = 1
demo: export PATH := $(CURDIR)/$(BIN):$(PATH)
demo: export DEMO_HOST := $(DEMO_HOST)
demo: export DEMO_PORT := $(DEMO_PORT)
demo: $(VENV)/.installed
	python manage.py migrate --noinput
	python manage.py seed_demo
	@echo ""
	@echo "  labres is starting at http://$(DEMO_HOST):$(DEMO_PORT)/  (admin: http://$(DEMO_HOST):$(DEMO_PORT)/admin/)   Ctrl-C stops everything."
	@echo ""
	@# Ctrl-C stops honcho and every process with it (status 130): that is how the demo ends, not a failure.
	@trap true INT; honcho -f Procfile.demo start; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 130 ] || exit $$status

test: export SECRET_KEY ?= test-only-secret-key-not-for-production
test: export LABRES_VAR_DIR ?= $(CURDIR)/var/test
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
