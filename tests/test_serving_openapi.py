"""BentoML's OpenAPI document against what the policy routes really take and answer, for image and Box policies
(the vector Discrete case: test_serving_native.py): every request sent here is first checked against the document's
request schema, every answer against its response schema (jsonschema). The servers run with RLSHIP_PLAIN_API=1, so
BentoML's own @bentoml.api methods, which validate requests with those very schemas, answer them: the plain path
takes image and Box policies' requests as the lean routes do. Real `rlship serve` subprocesses on loopback ports,
one per policy (the plain path serves the default policy only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bentoml
import httpx
import jsonschema
import numpy as np
import pytest

from rlship.networks import NetworkSpec
from rlship.policy import Policy, load_policy
from tests.conftest import untrained_policy
from tests.pixel_policies import SMALL, b64, npy, pixel_policy, png
from tests.serve_load import served

BOX_ENV = "Pendulum-v1"
PLAIN = {"RLSHIP_PLAIN_API": "1"}


def box_policy(folder: Path) -> Path:
    """An untrained Gaussian policy for Pendulum-v1 (Box actions of shape (1,), an actor-critic: it has a value)."""
    spec = NetworkSpec((8,), "tanh", {"mean": 1, "value": 1}, log_std=1)
    return untrained_policy("ppo", spec, env_id=BOX_ENV, action_distribution="gaussian").save(folder)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openapi")
    return {"image": pixel_policy(root / "image", SMALL, seed=3), "box": box_policy(root / "box")}


class Documented:
    """A server and its OpenAPI document (GET /docs.json): `post` checks the body against the documented request
    schema before sending it, and a 200 answer against the documented response schema."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        self.paths = self.client.get("/docs.json").json()["paths"]

    def schema(self, route: str, part: str) -> dict[str, Any]:
        post = self.paths[route]["post"]
        where = post["requestBody"] if part == "request" else post["responses"]["200"]
        return where["content"]["application/json"]["schema"]

    def post(self, route: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        jsonschema.validate(body, self.schema(route, "request"))
        answer = self.client.post(route, json=body)
        assert answer.status_code == status, answer.text
        if status == 200:
            jsonschema.validate(answer.json(), self.schema(route, "response"))
        return answer.json()


def documented_server(artifact: Path) -> Iterator[Documented]:
    with served(str(artifact), "--max-batch", "8", env=PLAIN) as url:
        documented = Documented(url)
        yield documented
        documented.client.close()


@pytest.fixture(scope="module")
def image(artifacts: dict[str, Path]) -> Iterator[Documented]:
    yield from documented_server(artifacts["image"])


@pytest.fixture(scope="module")
def box(artifacts: dict[str, Path]) -> Iterator[Documented]:
    yield from documented_server(artifacts["box"])


def frame(shift: int) -> np.ndarray:
    """A raw 60x40 RGB frame: a dark block on a light ground, `shift` pixels from the left (a small PNG)."""
    array = np.full(SMALL.frame_shape, 230, dtype=np.uint8)
    array[10:30, shift : shift + 12] = (20, 40, 60)
    return array


def stacked(policy: Policy, *frames: np.ndarray) -> np.ndarray:
    """The observation after these raw frames of one episode: the first repeated to fill the stack, oldest first."""
    images = [SMALL.preprocess(f) for f in frames]
    return np.stack([images[0]] * (SMALL.frame_stack - len(images)) + images)


def test_the_document_describes_image_observations_and_box_answers(image: Documented) -> None:
    act = image.schema("/act", "request")["properties"]
    assert act["observation"]["oneOf"][0] == {"items": {"type": "number"}, "type": "array"}
    pixel = act["observation"]["oneOf"][1]["items"]["items"]["items"]["items"]
    assert pixel == {"maximum": 255, "minimum": 0, "type": "integer"}
    assert {"image", "session", "reset"} <= set(act) and "base64 PNG" in act["image"]["description"]
    batch = image.schema("/act_batch", "request")["properties"]
    assert {"observations", "images", "sessions", "reset"} <= set(batch)
    assert image.schema("/act", "response")["properties"]["action"]["oneOf"] == [
        {"type": "integer"},
        {"items": {"type": "number"}, "type": "array"},
    ]
    description = image.paths["/act"]["post"]["description"]
    assert "image/png" in description and "application/x-npy" in description and "mean and std" in description


def test_plain_path_answers_an_image_policy_in_every_json_form(image: Documented, artifacts: dict[str, Path]) -> None:
    policy = load_policy(artifacts["image"])
    obs = np.random.default_rng(0).integers(0, 256, (3, *SMALL.observation_shape), dtype=np.uint8)
    expected = policy.act(obs)

    whole = image.post("/act", {"observation": obs[0].tolist()})
    assert whole["action"] == int(expected.actions[0])
    np.testing.assert_allclose(whole["q_values"], expected.q_values[0], rtol=1e-5, atol=1e-5)  # type: ignore[index]
    rows = image.post("/act_batch", {"observations": obs.tolist()})
    np.testing.assert_allclose(rows["q_values"], expected.q_values, rtol=1e-5, atol=1e-5)

    # raw frames as base64 PNGs: the server keeps the session's stack, as on the lean routes
    first, second = frame(5), frame(40)
    episode = [
        image.post("/act", {"image": b64(png(first)), "session": "episode-1", "reset": True}),
        image.post("/act", {"image": b64(png(second)), "session": "episode-1"}),
    ]
    wanted = policy.act(np.stack([stacked(policy, first), stacked(policy, first, second)])).q_values
    np.testing.assert_allclose([a["q_values"] for a in episode], wanted, rtol=1e-5, atol=1e-5)
    both = image.post(
        "/act_batch", {"images": [b64(png(first)), b64(png(second))], "sessions": ["a", "b"], "reset": True}
    )
    wanted = policy.act(np.stack([stacked(policy, first), stacked(policy, second)])).q_values
    np.testing.assert_allclose(both["q_values"], wanted, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"observation": [0.1, 0.2, 0.3, 0.4]}, 422, "an observation of this policy has shape [2, 20, 30, 1]"),
        ({"image": "bm90IGFuIGltYWdl", "reset": True}, 422, "neither a PNG nor a .npy"),
        ({"image": b64(png(frame(0))), "session": "never-started"}, 409, "reset"),
        ({}, 422, "send exactly one of observation(s) or image(s)"),
    ],
)
def test_plain_path_refuses_a_bad_image_request_as_the_lean_route_does(
    image: Documented, body: dict[str, Any], status: int, says: str
) -> None:
    assert says in str(image.post("/act", body, status=status))


def test_plain_path_refuses_binary_bodies_and_named_routes_saying_what_to_do(image: Documented) -> None:
    for content_type, body in (("image/png", png(frame(0))), ("application/x-npy", npy(frame(0)))):
        answer = image.client.post("/act?session=a&reset=true", content=body, headers={"content-type": content_type})
        assert answer.status_code == 415, answer.text
        assert "JSON bodies only" in answer.json()["error"] and '{"image": "<base64 PNG>"' in answer.json()["error"]
    named = image.client.post("/policies/image/act", json={"observation": []})
    assert named.status_code == 404 and "default policy only" in named.json()["error"]


def test_plain_path_answers_a_box_policy_with_mean_and_std(box: Documented, artifacts: dict[str, Path]) -> None:
    policy = load_policy(artifacts["box"])
    obs = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -2.0], [-1.0, 0.0, 4.0]], dtype=np.float32)
    expected = policy.act(obs)
    one = box.post("/act", {"observation": obs[0].tolist()})
    assert set(one) == {"action", "mean", "std", "value"}  # no probabilities: not null either
    for field, value in (("action", expected.actions), ("mean", expected.mean), ("std", expected.std)):
        np.testing.assert_allclose(one[field], value[0], rtol=1e-5)  # type: ignore[index]
    many = box.post("/act_batch", {"observations": obs.tolist()})
    assert set(many) == {"actions", "mean", "std", "values"}
    np.testing.assert_allclose(many["actions"], expected.actions, rtol=1e-5)
    np.testing.assert_allclose(many["std"], expected.std, rtol=1e-5)  # type: ignore[arg-type]
    refused = box.post("/act", {"observation": obs[0].tolist(), "image": b64(png(frame(0)))}, status=422)
    assert "image is for image policies" in str(refused) and "with 3 numbers" in str(refused)
    assert "shape (3,)" in str(box.post("/act", {"observation": [0.0, 1.0]}, status=422))


def test_bentoml_client_sends_an_image_policy_a_frame(image: Documented, artifacts: dict[str, Path]) -> None:
    """BentoML's client builds its calls from /schema.json: with the image fields documented, it can send them."""
    policy = load_policy(artifacts["image"])
    first = frame(12)
    with bentoml.SyncHTTPClient(str(image.client.base_url)) as client:
        answer = client.act(image=b64(png(first)), session="client", reset=True)
    wanted = policy.act(stacked(policy, first)[None]).q_values
    np.testing.assert_allclose(answer["q_values"], wanted[0], rtol=1e-5, atol=1e-5)  # type: ignore[index]
