# Two commands do all set-up on a fresh machine (they create .venv and install into it):
#   make main   the survey's benchmark grid in the cpu profile: results/benchmark_cpu/ (tables + figures)
#   make test   the whole test suite, notebooks included (what CI runs)
#   make seg3d  the PH2 segmentation and AdrenalMNIST3D rows of the benchmark (their own grid)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Data: $SURVEY_DATA_DIR if set; else this project's shared copy beside the checkout; else ./data
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(SURVEY_DATA_DIR),)
ifneq ($(wildcard $(SHARED_DATA)/medmnist),)
export SURVEY_DATA_DIR := $(SHARED_DATA)
endif
endif

.PHONY: main seg3d test site install lint clean
main: $(VENV)/.installed
	$(PY) -m survey_lib benchmark --profile $(or $(SURVEY_PROFILE),cpu)

# the segmentation (PH2) and volume (AdrenalMNIST3D) rows: their own grid, hours on a 2-core CPU
seg3d: $(VENV)/.installed
	$(PY) -m survey_lib benchmark --grid $(or $(SURVEY_PROFILE),cpu)-seg3d

test: $(VENV)/.installed
	$(PY) -m pytest

site: $(VENV)/.installed
	$(PY) -m survey_lib site --profile $(or $(SURVEY_PROFILE),smoke)

lint: $(VENV)/.installed
	$(PY) -m ruff check survey_lib tests

install: $(VENV)/.installed

# the Jupyter server setting that hides the notebooks' jupytext .py twins from JupyterLab's file
# browser, made the venv's own server config (a conf.d file would only be read for extensions)
JUPYTER_SETTING := jupyter-config/jupyter_server_config.json
$(VENV)/.installed: pyproject.toml $(JUPYTER_SETTING)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	install -D -m 644 $(JUPYTER_SETTING) $(VENV)/etc/jupyter/jupyter_server_config.json
	touch $@

clean:
	rm -rf results runs site
