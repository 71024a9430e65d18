"""The BentoML service over real HTTP: one `rlship serve` subprocess on a loopback port, shared by the module."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from rlship.networks import NetworkSpec
from rlship.policy import load_policy
from rlship.serving.routes import PolicyRoutes
from rlship.serving.simulate import simulate
from tests.cli_run import RLSHIP
from tests.conftest import untrained_policy
from tests.ports import free_port
from tests.serve_load import kill_server, served, start_server

MAX_BATCH = 64  # small, so the oversized-batch case is cheap to send


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with served("default", "--max-batch", str(MAX_BATCH)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as c:
        yield c


OBS = [[0.01, -0.02, 0.03, 0.04], [0.1, 0.5, -0.05, -0.4], [0.0, 0.0, 0.0, 0.0]]


def test_act_answers_what_the_policy_does(client: httpx.Client) -> None:
    policy = load_policy("default")
    for obs in OBS:
        answer = client.post("/act", json={"observation": obs})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = policy.act([obs])
        assert body["action"] == int(expected.actions[0])
        np.testing.assert_allclose(body["probabilities"], expected.probabilities[0], rtol=1e-6)
        assert body["value"] == pytest.approx(float(expected.values[0]), rel=1e-6)  # PPO is actor-critic
        assert "q_values" not in body


def test_act_samples_when_asked(client: httpx.Client) -> None:
    obs = OBS[0]  # probabilities about 0.46 / 0.54: both actions come up
    seeded = [client.post("/act", json={"observation": obs, "deterministic": False, "seed": 7}).json() for _ in "ab"]
    assert seeded[0] == seeded[1]  # a seed makes a sample repeatable
    actions = {
        client.post("/act", json={"observation": obs, "deterministic": False}).json()["action"] for _ in range(40)
    }
    assert actions == {0, 1}
    greedy = {client.post("/act", json={"observation": obs}).json()["action"] for _ in range(5)}
    assert len(greedy) == 1


def test_batch_route_answers_every_row(client: httpx.Client) -> None:
    obs = np.random.default_rng(0).normal(scale=0.1, size=(MAX_BATCH, 4)).astype(np.float32)
    answer = client.post("/act_batch", json={"observations": obs.tolist()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = load_policy("default").act(obs)
    assert body["actions"] == expected.actions.tolist()
    np.testing.assert_allclose(body["probabilities"], expected.probabilities, rtol=1e-5)
    np.testing.assert_allclose(body["values"], expected.values, rtol=1e-5)


def test_policy_route_says_what_is_loaded(client: httpx.Client) -> None:
    info = client.get("/policy").json()
    assert info["env_id"] == "CartPole-v1"
    assert info["algorithm"] == "ppo"
    assert info["observation_space"]["shape"] == [4]
    assert info["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert info["evaluation"]["metric"] == "500.00 +/- 0.00"
    assert info["evaluation"]["n_eval_episodes"] == 100
    assert info["source"] == "default"
    assert info["revision"] is None
    assert info["rlship_version"] == "0.1.0"
    assert info["max_batch"] == MAX_BATCH


def test_bentoml_probes_and_metrics(client: httpx.Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.post("/act", json={"observation": OBS[0]})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'bentoml_service_request_total{endpoint="/act"' in metrics.text


BAD_ACT = {
    "wrong length": ('{"observation": [0.1, 0.2, 0.3]}', 422, "has 3 numbers"),
    "too long": ('{"observation": [0, 0, 0, 0, 0]}', 422, "has 5 numbers"),
    "rank 2": ('{"observation": [[0.1, 0.2, 0.3, 0.4]]}', 422, "valid number"),
    "strings": ('{"observation": ["0.1", 0.2, 0.3, 0.4]}', 422, "valid number"),
    "booleans": ('{"observation": [true, 0.2, 0.3, 0.4]}', 422, "valid number"),
    "null": ('{"observation": [null, 0.2, 0.3, 0.4]}', 422, "valid number"),
    "NaN": ('{"observation": [NaN, 0.2, 0.3, 0.4]}', 422, "NaN or infinity"),
    "infinity": ('{"observation": [Infinity, 0.2, 0.3, 0.4]}', 422, "NaN or infinity"),
    "overflow": ('{"observation": [1e999, 0.2, 0.3, 0.4]}', 422, "NaN or infinity"),
    "missing field": ('{"deterministic": true}', 422, "observation: Field required"),
    "misspelt field": ('{"observations": [0.1, 0.2, 0.3, 0.4]}', 422, "Extra inputs"),
    "wrong flag type": ('{"observation": [0.1, 0.2, 0.3, 0.4], "deterministic": "yes"}', 422, "valid boolean"),
    "negative seed": ('{"observation": [0, 0, 0, 0], "deterministic": false, "seed": -1}', 422, "seed"),
    "not JSON": ("observation=0.1,0.2", 400, "not valid JSON"),
    "truncated JSON": ('{"observation": [0.1, 0.2', 400, "not valid JSON"),
    "empty body": ("", 400, "not valid JSON"),
    "JSON array": ("[0.1, 0.2, 0.3, 0.4]", 422, "should be an object"),
}
BAD_BATCH = {
    "empty batch": ('{"observations": []}', 422, "empty"),
    "ragged rows": ('{"observations": [[0, 0, 0, 0], [0, 0, 0]]}', 422, "observations[1] has 3 numbers"),
    "flat batch": ('{"observations": [0, 0, 0, 0]}', 422, "valid array"),
    "NaN in a row": ('{"observations": [[0, 0, 0, 0], [0, NaN, 0, 0]]}', 422, "NaN or infinity"),
    "oversized batch": (json.dumps({"observations": [[0, 0, 0, 0]] * (MAX_BATCH + 1)}), 413, f"limit of {MAX_BATCH}"),
    "oversized body": ("[" + "0," * 100_000 + "0]", 413, "bytes"),
}


@pytest.mark.parametrize(("route", "case"), [("/act", c) for c in BAD_ACT] + [("/act_batch", c) for c in BAD_BATCH])
def test_bad_input_gets_a_4xx_that_says_what_is_expected(client: httpx.Client, route: str, case: str) -> None:
    body, status, says = (BAD_ACT if route == "/act" else BAD_BATCH)[case]
    answer = client.post(route, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert says in message
    if status == 422:  # the message names the shape the loaded policy expects
        assert "4 numbers" in message or "(4,)" in message
    # the worker is alive and still answers correctly
    assert client.post("/act", json={"observation": OBS[0]}).json()["action"] == 1


def test_wrong_method_and_unknown_route_are_4xx(client: httpx.Client) -> None:
    assert client.get("/act").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


def test_simulate_drives_cartpole_through_http(server: str) -> None:
    out = subprocess.run(
        [RLSHIP, "simulate", "--url", server, "--env", "CartPole-v1", "--episodes", "2", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "return: 500.00 +/- 0.00" in out.stdout
    assert "1000 calls to /act" in out.stdout  # 2 episodes x 500 steps, one call per step
    assert "latency ms: p50" in out.stdout
    result = simulate(server, "CartPole-v1", episodes=10, seed=1, batch=True)  # the vectorised simulator
    assert result.evaluation.mean_reward >= 475
    assert len(result.latencies_ms) == max(result.evaluation.episode_lengths)


def test_simulate_says_when_no_server_answers() -> None:
    out = subprocess.run(
        [RLSHIP, "simulate", "--url", f"http://127.0.0.1:{free_port()}", "--episodes", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "cannot reach the policy server" in out.stderr


@pytest.mark.parametrize("url", ["file:///etc/passwd", "127.0.0.1:3000", "ftp://127.0.0.1"])
def test_simulate_refuses_a_url_that_is_not_http(url: str) -> None:
    out = subprocess.run([RLSHIP, "simulate", "--url", url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "rlship simulate: error: --url must be the server's http:// or https:// address, such as "
        f"http://127.0.0.1:3000; got {url!r}"
    )


def test_a_policy_that_cannot_be_loaded_stops_the_server(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    proc, _ = start_server(str(broken))
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        kill_server(proc)
    assert proc.returncode == 1
    assert f"cannot load policy {str(broken)!r}" in out
    assert "not valid JSON" in out


# The same routes app in-process, for the algorithms' output kinds (every field a policy has, no special case).


def _cartpole_policy(heads: dict[str, int], distribution: str, epsilon: float = 0.0):
    spec = NetworkSpec((16,), "tanh", heads)
    return untrained_policy("x", spec, action_distribution=distribution, epsilon=epsilon)


@pytest.mark.parametrize(
    ("heads", "distribution", "has"),
    [
        ({"q_values": 2}, "epsilon_greedy", {"q_values"}),
        ({"logits": 2, "value": 1}, "softmax", {"value"}),
        ({"logits": 2}, "softmax", set()),
        ({"value": 1}, "uniform", {"value"}),
    ],
)
def test_every_kind_of_policy_answers_its_fields(heads: dict[str, int], distribution: str, has: set[str]) -> None:
    policy = _cartpole_policy(heads, distribution, epsilon=0.1)
    routes = PolicyRoutes(max_batch=8)
    routes.load(policy)

    async def ask() -> tuple[dict, dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(routes.app()), base_url="http://policy") as c:
            one = await c.post("/act", json={"observation": OBS[1]})
            many = await c.post("/act_batch", json={"observations": OBS})
            return one.json(), many.json()

    one, many = asyncio.run(ask())
    extra = {"value", "q_values"}
    assert set(one) == {"action", "probabilities"} | has
    assert set(many) == {"actions", "probabilities"} | {"values" if f == "value" else f for f in has}
    expected = policy.act(OBS, rng=np.random.default_rng(0))
    if "q_values" in has:
        np.testing.assert_allclose(many["q_values"], expected.q_values, rtol=1e-5)
        assert one["action"] == int(np.argmax(one["q_values"]))
        assert sorted(one["probabilities"]) == pytest.approx([0.05, 0.95])
    if "value" in has:
        np.testing.assert_allclose(many["values"], expected.values, rtol=1e-5)
    if distribution != "uniform":
        assert many["actions"] == expected.actions.tolist()
    else:
        assert many["probabilities"] == [[0.5, 0.5]] * len(OBS)
    assert not (extra - has) & set(one)


def test_routes_refuse_until_the_policy_is_loaded_and_warm() -> None:
    routes = PolicyRoutes(max_batch=8)

    async def ask() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(routes.app()), base_url="http://policy") as c:
            act = await c.post("/act", json={"observation": OBS[0]})
            info = await c.get("/policy")
            return act.status_code, info.status_code

    assert not routes.ready
    assert asyncio.run(ask()) == (503, 503)
    routes.load(load_policy("default"))
    assert routes.ready
    assert asyncio.run(ask()) == (200, 200)
