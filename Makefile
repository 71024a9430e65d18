# The README's two commands are `make demo` and `make test`; each sets up .venv first if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints-cpu.txt

.PHONY: setup demo test lint bench bench-algorithms default-policy

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP) -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# Train a CartPole-v1 policy, show its evaluation, and evaluate the embedded default policy the same way.
demo: setup
	$(BIN)/rlship train ppo CartPole-v1 --seed 0 --out runs/ppo-CartPole-v1-s0
	$(BIN)/rlship evaluate runs/ppo-CartPole-v1-s0 --episodes 100
	$(BIN)/rlship evaluate default --episodes 100

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/pytest

# Benchmarks need Stable-Baselines3 (the peer) and Box2D (LunarLander-v3) on top of the dev setup.
$(VENV)/.bench: $(VENV)/.installed
	$(PIP) -e ".[dev,bench,box2d]"
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/train_speed.py

# Every rlship algorithm beside SB3 A2C and DQN (rl-zoo settings) on CartPole-v1: about 20 minutes on 2 cores.
bench-algorithms: $(VENV)/.bench
	$(BIN)/python benchmarks/algorithms.py

# Re-make the embedded default policy (the exact command the README documents).
default-policy: setup
	$(BIN)/rlship train ppo CartPole-v1 --seed 0 --out runs/default-policy --no-progress
	cp runs/default-policy/config.json runs/default-policy/model.safetensors runs/default-policy/results.json \
	  src/rlship/default_policy/
