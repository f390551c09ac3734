# pharosd developer commands. `make run` and `make test` are the quickstart.
PYTHON ?= python3
VENV   ?= .venv
# Second suite run on Debian 12's own python3 and libraries (python3-psutil
# 5.9.4, python3-yaml 6.0, python3-structlog 22.3, python3-requests 2.28.1,
# python3-sdnotify 0.3.1): a venv over the system site-packages. The
# real-systemd suite (tests/test_systemd_real.py) boots a Debian 12 container
# that installs the .deb and runs Debian's python3 inside, whichever venv runs
# pytest: it runs in test-main only, and test-debian skips it saying why.
DEBIAN_PYTHON ?= /usr/bin/python3
DEBIAN_VENV   ?= .venv-debian
PYTEST_ARGS   ?=
# The suite mostly waits (on real peers, daemons and outages), so it runs on
# more pytest-xdist workers than there are cores (tests/conftest.py says how
# they are scheduled). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 6
PYTEST_XDIST   ?= -n $(PYTEST_WORKERS)

.PHONY: run test test-main test-debian lint typecheck bench deb clean

$(VENV)/.stamp: pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv" >&2; \
	  apt-get install -y python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,dev,snappy]'
	@touch $@

run: $(VENV)/.stamp
	$(VENV)/bin/pharosd run

# Both suite runs at once (each prints its output whole when it ends); a
# failing run fails `make test`. TEST_JOBS=1 runs them one after the other.
# The venvs are made first, one after the other.
TEST_JOBS ?= 2
test: $(VENV)/.stamp $(DEBIAN_VENV)/.stamp
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-main test-debian

test-main: $(VENV)/.stamp
	$(VENV)/bin/python -m pytest -q -rs $(PYTEST_XDIST) $(PYTEST_ARGS)

$(DEBIAN_VENV)/.stamp: pyproject.toml
	$(DEBIAN_PYTHON) -m venv --system-site-packages $(DEBIAN_VENV)
	$(DEBIAN_VENV)/bin/pip install -q 'pytest>=7' 'pytest-timeout>=2' 'hypothesis>=6.60' 'trustme>=0.9' \
	  'pytest-xdist>=3'
	$(DEBIAN_VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

test-debian: $(DEBIAN_VENV)/.stamp
	$(DEBIAN_VENV)/bin/python -c 'import psutil, yaml, structlog, requests, sdnotify; \
	  print("debian libs: psutil", psutil.__version__, "yaml", yaml.__version__, \
	  "structlog", structlog.__version__, "requests", requests.__version__)'
	PHAROS_SKIP_REAL_SYSTEMD="ran once in test-main: the container runs its own Debian python3, not this venv" \
	PHAROS_TEST_PYTHON=$(DEBIAN_VENV)/bin/python $(DEBIAN_VENV)/bin/python -m pytest -q -rs $(PYTEST_XDIST) \
	  $(PYTEST_ARGS)

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(VENV)/.stamp
	$(VENV)/bin/python bench/run_bench.py

deb:
	packaging/build-deb

clean:
	rm -rf $(VENV) $(DEBIAN_VENV) dist build *.egg-info .pytest_cache .hypothesis
