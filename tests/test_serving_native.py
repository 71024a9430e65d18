"""The policy routes as BentoML knows them (its OpenAPI document, its client) and as plain HTTP clients call them,
against one real `rlship serve` subprocess serving two named policies: the embedded default and a random baseline."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import jsonschema
import numpy as np
import pytest

from rlship.policy import load_policy
from rlship.training import ALGORITHMS
from tests.serve_load import served

OBS = [0.01, 0.0, 0.02, 0.0]
ORIGIN = "http://simulator.example"
CORS_OPTION = "services.rlship_policy.http.cors.access_control_allow_origins"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random baseline, trained (it learns nothing) by its own algorithm's code."""
    out = tmp_path_factory.mktemp("runs") / "random-CartPole-v1"
    random = ALGORITHMS["random"]
    random.train("CartPole-v1", random.make_config("CartPole-v1", eval_episodes=5), seed=0, out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def server(baseline: Path) -> Iterator[str]:
    # BentoML's CORS turned on for one origin (its own config), to check the lean path keeps it
    cors = f"services.rlship_policy.http.cors.enabled=true {CORS_OPTION}[0]={ORIGIN}"
    with served("default", f"baseline={baseline}", "--max-batch", "64", env={"BENTOML_CONFIG_OPTIONS": cors}) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as c:
        yield c


def test_openapi_document_lists_the_policy_routes_with_schemas_and_examples(client: httpx.Client) -> None:
    paths = client.get("/docs.json").json()["paths"]
    # (request fields, response fields always there); probabilities (Discrete) and mean/std (Box) are documented
    # but optional, since which of them an answer holds depends on the policy's action space
    expected_fields = {
        # the image policies' fields too (test_serving_openapi.py sends them to an image policy)
        "/act": ({"observation", "image", "session", "reset", "deterministic", "seed"}, {"action"}),
        "/act_batch": ({"observations", "images", "sessions", "reset", "deterministic", "seed"}, {"actions"}),
        "/policy": (set(), {"env_id", "algorithm", "observation_space", "action_space", "random_actions"}),
        "/policies": (set(), {"default", "policies"}),
    }
    for route, (inputs, outputs) in expected_fields.items():
        post = paths[route]["post"]
        request_schema = post["requestBody"]["content"]["application/json"]["schema"]
        response_schema = post["responses"]["200"]["content"]["application/json"]["schema"]
        assert set(request_schema.get("properties", {})) == inputs, route
        assert outputs <= set(response_schema["properties"]), route
        assert outputs <= set(response_schema["required"]), route
        if route in ("/act", "/act_batch"):
            assert {"probabilities", "mean", "std"} <= set(response_schema["properties"]), route
        assert post["description"], route
        if route in ("/act", "/act_batch"):
            # the documented example is a real request, and its documented answer is what the server says
            jsonschema.validate(request_schema["example"], request_schema)
            answer = client.post(route, json=request_schema["example"])
            assert answer.status_code == 200, answer.text
            jsonschema.validate(answer.json(), response_schema)
            example = response_schema["example"]
            for field, value in example.items():
                np.testing.assert_allclose(
                    answer.json()[field], value, rtol=1e-3, atol=1e-4, err_msg=f"{route} {field}"
                )


def test_bentoml_client_calls_every_route(server: str) -> None:
    policy = load_policy("default")
    with bentoml.SyncHTTPClient(server) as c:
        one = c.act(observation=OBS)
        expected = policy.act([OBS])
        assert one["action"] == int(expected.actions[0])
        np.testing.assert_allclose(one["probabilities"], expected.probabilities[0], rtol=1e-6)
        many = c.act_batch(observations=[OBS, [0.1, 0.5, -0.05, -0.4]])
        assert many["actions"] == policy.act([OBS, [0.1, 0.5, -0.05, -0.4]]).actions.tolist()
        seeded = [c.act(observation=OBS, deterministic=False, seed=3)["action"] for _ in "ab"]
        assert seeded[0] == seeded[1]
        info = c.policy()
        assert info["env_id"] == "CartPole-v1" and info["source"] == "default" and info["name"] == "default"
        assert [p["name"] for p in c.policies()["policies"]] == ["default", "baseline"]
        with pytest.raises(bentoml.exceptions.BentoMLException) as refused:
            c.act(observation=[0.1, 0.2, 0.3])
        assert refused.value.error_code == 422
        assert "observation has 3 numbers" in str(refused.value)


def test_bentoml_client_on_a_named_policy(server: str) -> None:
    """`URL/policies/NAME` is a base URL BentoML's client works with, like the server's own."""
    with bentoml.SyncHTTPClient(f"{server}/policies/baseline") as c:
        assert c.policy()["algorithm"] == "random"
        answer = c.act(observation=OBS)
        assert answer["probabilities"] == [0.5, 0.5]
    with bentoml.SyncHTTPClient(f"{server}/policies/default") as c:
        assert c.act(observation=OBS)["action"] == int(load_policy("default").act([OBS]).actions[0])


def test_raw_json_posts_as_curl_sends_them(server: str) -> None:
    """A raw body with a content type, as `curl -d` posts it (the standard library's client, no JSON helper)."""
    body = b'{"observation": [0.01, 0.0, 0.02, 0.0]}'
    request = urllib.request.Request(f"{server}/act", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read())["action"] == int(load_policy("default").act([OBS]).actions[0])
    bad = urllib.request.Request(f"{server}/act", data=b'{"observation": [1, 2]}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 422
    assert "observation has 2 numbers" in json.loads(refused.value.read())["error"]


def test_plain_httpx_on_every_route(client: httpx.Client) -> None:
    assert (
        client.post("/act", json={"observation": OBS}).json()
        == client.post("/policies/default/act", json={"observation": OBS}).json()
    )
    batch = client.post("/policies/baseline/act_batch", json={"observations": [OBS] * 4})
    assert batch.status_code == 200 and batch.json()["probabilities"] == [[0.5, 0.5]] * 4
    assert client.get("/policy").json() == client.post("/policy").json() == client.post("/policy", json={}).json()
    assert client.get("/policies/baseline/policy").json()["name"] == "baseline"
    listing = client.get("/policies").json()
    assert listing["default"] == "default"
    assert [(p["name"], p["algorithm"], p["generation"]) for p in listing["policies"]] == [
        ("default", "ppo", 0),
        ("baseline", "random", 0),
    ]


def test_the_random_baseline_says_its_actions_are_random(client: httpx.Client) -> None:
    info = client.get("/policies/baseline/policy").json()
    assert info["action_distribution"] == "uniform" and info["random_actions"] is True
    assert "random" in info["note"] and "deterministic" in info["note"]
    actions = {client.post("/policies/baseline/act", json={"observation": OBS}).json()["action"] for _ in range(40)}
    assert actions == {0, 1}  # what the note says: "deterministic" (the default) still draws at random
    trained = client.get("/policy").json()
    assert trained["random_actions"] is False and "note" not in trained


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/policies/nobody/act", {"observation": OBS}, 404, "no policy is named 'nobody'"),
        ("GET", "/policies/nobody/policy", None, 404, "GET /policies lists"),
        ("POST", "/policies/" + "x" * 300 + "/act", {"observation": OBS}, 404, "..."),
        ("POST", "/policy", {"verbose": True}, 422, "takes no arguments"),
        ("POST", "/policies/baseline/act", {"observation": [1.0]}, 422, "has 1 numbers"),
        ("PUT", "/policies/default", {"source": "default"}, 403, "RLSHIP_ADMIN_TOKEN"),
    ],
)
def test_named_routes_refuse_what_they_cannot_answer(
    client: httpx.Client, method: str, path: str, body: object, status: int, says: str
) -> None:
    answer = client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert len(answer.text) < 1000  # a long name is shortened in the message, not echoed whole


def test_bentoml_cors_covers_the_policy_routes(client: httpx.Client) -> None:
    for method, path, body in (("POST", "/act", {"observation": OBS}), ("GET", "/policies/baseline/policy", None)):
        answer = client.request(method, path, json=body, headers={"origin": ORIGIN})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in client.get("/livez", headers={"origin": "http://other.example"}).headers


def test_simulate_drives_a_named_policy(server: str) -> None:
    """`rlship simulate --url URL/policies/NAME`: a named policy is a base URL like the server's own."""
    from rlship.serving.simulate import simulate

    result = simulate(f"{server}/policies/baseline", "CartPole-v1", episodes=3, seed=0)
    assert result.policy["name"] == "baseline" and result.policy["algorithm"] == "random"
    assert result.evaluation.mean_reward < 100  # the random baseline's floor, not the trained default's 500
