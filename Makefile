# The README's two commands are `make demo` and `make test`; each sets up .venv first if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints-cpu.txt

.PHONY: setup demo test test-tools lint bench bench-algorithms bench-control bench-serve default-policy

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP) -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# Train a CartPole-v1 policy, show its evaluation, evaluate the embedded default policy the same way, package
# the trained policy for the Hugging Face Hub (model card, replay video, fresh results; `rlship push` uploads it),
# then serve it on http://127.0.0.1:3000 (Ctrl+C stops it; the README shows the curl call to /act).
demo: setup
	$(BIN)/rlship train ppo CartPole-v1 --seed 0 --out runs/ppo-CartPole-v1-s0 --overwrite
	$(BIN)/rlship evaluate runs/ppo-CartPole-v1-s0 --episodes 100
	$(BIN)/rlship evaluate default --episodes 100
	$(BIN)/rlship package runs/ppo-CartPole-v1-s0 --out runs/ppo-CartPole-v1-s0-hub
	@echo 'serving; in another shell: curl -s -X POST http://127.0.0.1:3000/act -H "content-type: application/json" -d '"'"'{"observation": [0.01, 0.0, 0.02, 0.0]}'"'"
	$(BIN)/rlship serve runs/ppo-CartPole-v1-s0 --port 3000

lint: setup
	$(BIN)/ruff check src tests benchmarks service.py
	$(BIN)/ruff format --check src tests benchmarks service.py

# Programs the tests start besides Python: HAProxy (tests/test_load_balancer.py puts two `rlship serve` replicas
# behind it). Installed from Debian when missing (quick when present); in CI that test fails without it.
test-tools:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy)

test: lint test-tools
	$(BIN)/pytest

# Benchmarks need Stable-Baselines3 (the peer) and Box2D (LunarLander-v3) on top of the dev setup.
$(VENV)/.bench: $(VENV)/.installed
	$(PIP) -e ".[dev,bench,box2d]"
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/package.py

# The serving load test (benchmarks/serve_load.py) uses wrk when installed (Debian: apt-get install wrk).
bench-serve: setup
	$(BIN)/python benchmarks/serve_load.py --soak 60

# Every rlship algorithm beside SB3 A2C and DQN (rl-zoo settings) on CartPole-v1: about 20 minutes on 2 cores.
bench-algorithms: $(VENV)/.bench
	$(BIN)/python benchmarks/algorithms.py

# PPO on LunarLander-v3, LunarLanderContinuous-v3 and MountainCarContinuous-v0 beside SB3 PPO (rl-zoo settings),
# whole processes: rlship on held-out seeds 100-104, SB3 on seed 100 (about 1.5 hours on 2 quiet cores).
bench-control: $(VENV)/.bench
	$(BIN)/python benchmarks/control.py

# Re-make the embedded default policy (the exact command the README documents).
default-policy: setup
	$(BIN)/rlship train ppo CartPole-v1 --seed 0 --out runs/default-policy --no-progress --overwrite
	cp runs/default-policy/config.json runs/default-policy/model.safetensors runs/default-policy/results.json \
	  src/rlship/default_policy/
