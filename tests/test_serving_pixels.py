"""Serving a pixel policy over real HTTP: whole stacks, raw frames (base64 PNG, image/png, .npy) with frame-stack
sessions, hostile images, and `simulate` sending rendered frames. One `rlship serve` shared by the module serves two
real artifacts: `pix` (RGB frames made grey, a stack of 2) and `rgb` (RGB frames kept RGB, a stack of 1)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from rlship.evaluation import evaluate
from rlship.frames import FramePreprocessing
from rlship.games.cartpole_pixels import PREPROCESSING as CARTPOLE_PIXELS
from rlship.games.cartpole_pixels import TWO_FRAMES_25X100
from rlship.networks import CNNSpec, ConvLayer
from rlship.policy import load_policy, new_policy
from rlship.serving.simulate import simulate
from tests.cli_run import RLSHIP
from tests.pixel_policies import PIX, b64, make_frames_env, npy, pixel_policy, png
from tests.serve_load import served

RGB = FramePreprocessing(**{**PIX.__dict__, "grayscale": False, "frame_stack": 1})
IDLE_SECONDS = 3
MAX_SESSIONS = 8


# besides the env's default preprocessing, a CartPolePixels policy made with another: the two consecutive 25x100
# frames of the policies made before the default changed (or, were it the default, 3 frames 2 steps apart)
OTHER_CARTPOLE_PIXELS = (
    TWO_FRAMES_25X100 if CARTPOLE_PIXELS != TWO_FRAMES_25X100 else replace(CARTPOLE_PIXELS, frame_stack=3, frame_gap=2)
)


def cnn_policy(folder: Path, prep: FramePreprocessing = CARTPOLE_PIXELS) -> Path:
    """An untrained CNN policy for rlship/CartPolePixels-v1 (its rendering and `prep`)."""
    torch.manual_seed(7)
    policy = new_policy(
        "dqn",
        "rlship/CartPolePixels-v1",
        gym.spaces.Box(0, 255, prep.observation_shape, np.uint8),
        gym.spaces.Discrete(2),
        CNNSpec((ConvLayer(4, 5, 2), ConvLayer(8, 3, 2)), (16,), "relu", {"q_values": 2}),
        hyperparameters={},
        seed=7,
        action_distribution="epsilon_greedy",
        frames=prep,
    )
    return policy.save(folder)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pixels")
    return {
        "pix": pixel_policy(root / "pix", PIX, 3),
        "rgb": pixel_policy(root / "rgb", RGB, 4),
        "cnn": cnn_policy(root / "cnn"),
        "cnn_other": cnn_policy(root / "cnn_other", OTHER_CARTPOLE_PIXELS),
    }


@pytest.fixture(scope="module")
def url(artifacts: dict[str, Path]) -> Iterator[str]:
    args = [f"pix={artifacts['pix']}", f"rgb={artifacts['rgb']}", f"cnn={artifacts['cnn']}"]
    args += [f"cnn_other={artifacts['cnn_other']}", "vec=default"]
    args += ["--max-batch", "16"]
    args += ["--max-sessions", str(MAX_SESSIONS), "--session-idle", str(IDLE_SECONDS)]
    with served(*args) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def rendered(seed: int, steps: int, prep: FramePreprocessing = PIX) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The raw frames and the observations of one episode of the frames env (action 0 each step)."""
    env = make_frames_env(prep)
    obs, _ = env.reset(seed=seed)
    frames, observations = [env.render()], [obs]
    for _ in range(steps):
        obs, *_ = env.step(0)
        frames.append(env.render())
        observations.append(obs)
    env.close()
    return frames, observations


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def test_policy_route_says_what_to_send(client: httpx.Client) -> None:
    info = ok(client.get("/policy"))
    assert info["observation_preprocessing"] == PIX.to_dict()
    assert info["observation_space"] == {
        "type": "Box",
        "shape": [2, 20, 75, 1],
        "dtype": "uint8",
        "low": 0,
        "high": 255,
    }
    image = info["image_input"]
    assert image["observation_shape"] == [2, 20, 75, 1] and image["frame_shape"] == [400, 600, 3]
    assert image["sessions"]["max_sessions"] == MAX_SESSIONS and image["sessions"]["idle_seconds"] == IDLE_SECONDS
    assert {"observation", "image", "png", "npy"} <= set(image["forms"])
    assert info["max_batch"] == image["max_batch"] <= 16


def test_every_form_gives_the_env_observation_answer(client: httpx.Client, artifacts: dict[str, Path]) -> None:
    """The whole stack (nested lists, .npy) and raw frames through a session (base64 PNG, image/png, .npy) all give
    the answer the policy gives for the env's own observation."""
    policy = load_policy(artifacts["pix"])
    frames, observations = rendered(seed=11, steps=4)
    local = policy.act(np.stack(observations)).q_values
    assert local is not None
    answers: dict[str, list[list[float]]] = {form: [] for form in ("lists", "npy", "b64", "png", "npy-frame")}
    for t, (frame, obs) in enumerate(zip(frames, observations, strict=True)):
        reset = t == 0
        answers["lists"].append(ok(client.post("/act", json={"observation": obs.tolist()}))["q_values"])
        answers["npy"].append(
            ok(client.post("/act", content=npy(obs), headers={"content-type": "application/x-npy"}))["q_values"]
        )
        body = {"image": b64(png(frame)), "session": "b64-1", "reset": reset}
        answers["b64"].append(ok(client.post("/act", json=body))["q_values"])
        query = {"session": "png-1", "reset": str(reset).lower()}
        answers["png"].append(
            ok(client.post("/act", content=png(frame), params=query, headers={"content-type": "image/png"}))["q_values"]
        )
        query = {"session": "npy-1", "reset": str(reset).lower()}
        answers["npy-frame"].append(
            ok(client.post("/act", content=npy(frame), params=query, headers={"content-type": "application/x-npy"}))[
                "q_values"
            ]
        )
    for form, got in answers.items():
        np.testing.assert_allclose(got, local, rtol=1e-5, atol=1e-4, err_msg=form)
    assert len({round(q[0] - q[1], 4) for q in answers["png"]}) > 1, "the frames differ, so must the answers"


def test_batch_route_takes_frames_and_observations(client: httpx.Client, artifacts: dict[str, Path]) -> None:
    policy = load_policy(artifacts["pix"])
    episodes = [rendered(seed=s, steps=2) for s in (21, 22, 23)]
    ids = ["batch-a", "batch-b", "batch-c"]
    for t in range(3):
        frames = np.stack([frames[t] for frames, _ in episodes])
        expected = policy.act(np.stack([obs[t] for _, obs in episodes])).q_values
        query = {"sessions": ",".join(ids), "reset": "true" if t == 0 else "false"}
        by_npy = ok(
            client.post("/act_batch", content=npy(frames), params=query, headers={"content-type": "application/x-npy"})
        )
        json_ids = [i + "-json" for i in ids]
        by_json = ok(
            client.post(
                "/act_batch", json={"images": [b64(png(f)) for f in frames], "sessions": json_ids, "reset": t == 0}
            )
        )
        stacks = np.stack([obs[t] for _, obs in episodes])
        by_stack = ok(client.post("/act_batch", content=npy(stacks), headers={"content-type": "application/x-npy"}))
        for answer in (by_npy, by_json, by_stack):
            np.testing.assert_allclose(answer["q_values"], expected, rtol=1e-5, atol=1e-4)


def test_sessions_are_bounded_and_say_why_one_is_gone(client: httpx.Client) -> None:
    frame = rendered(seed=31, steps=0)[0][0]
    body = png(frame)
    headers = {"content-type": "image/png"}

    def send(session: str, reset: bool) -> httpx.Response:
        return client.post(
            "/act", content=body, params={"session": session, "reset": str(reset).lower()}, headers=headers
        )

    never = send("never-started", reset=False)
    assert never.status_code == 409 and "never started" in never.json()["error"]
    assert "reset" in never.json()["error"]
    for i in range(MAX_SESSIONS + 1):  # one more than the cap: the least recently used goes
        ok(send(f"lru-{i}", reset=True))
    evicted = send("lru-0", reset=False)
    assert evicted.status_code == 409 and "evicted" in evicted.json()["error"]
    ok(send(f"lru-{MAX_SESSIONS}", reset=False))  # the newest is still there
    ok(send("idle", reset=True))
    time.sleep(IDLE_SECONDS + 0.5)
    expired = send("idle", reset=False)
    assert expired.status_code == 409 and "expired" in expired.json()["error"]
    ok(send("idle", reset=True))  # reset starts it again


def test_stacked_policy_needs_a_session_for_a_continuing_frame(client: httpx.Client) -> None:
    frame = rendered(seed=41, steps=0)[0][0]
    alone = client.post("/act", json={"image": b64(png(frame))})
    assert alone.status_code == 422 and "session" in alone.json()["error"]
    ok(client.post("/act", json={"image": b64(png(frame)), "reset": True}))  # an episode's first frame
    ok(client.post("/policies/rgb/act", json={"image": b64(png(frame))}))  # a stack of one frame needs none


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG whose header claims width x height 8-bit RGB pixels, with a tiny (wrong) image data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def animated_png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", save_all=True, append_images=[Image.fromarray(255 - frame)])
    return buffer.getvalue()


FRAME = np.full((400, 600, 3), 200, np.uint8)
HOSTILE: dict[str, tuple[str, bytes | dict[str, Any], str, int, str]] = {
    # name: (content type, body, route, status, words the message must hold)
    "corrupt png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10, "/act", 422, "PNG"),
    "truncated png": ("image/png", png(FRAME)[:-200], "/act", 422, "not a readable PNG"),
    "bomb png": ("image/png", bomb_png(100_000, 100_000), "/act", 422, "100000x100000"),
    "wrong size": ("image/png", png(np.zeros((200, 300, 3), np.uint8)), "/act", 422, "600x400"),
    "rgba": ("image/png", png(np.zeros((400, 600, 4), np.uint8)), "/act", 422, "RGBA"),
    "grey for rgb": ("image/png", png(np.zeros((400, 600), np.uint8)), "/policies/rgb/act", 422, "RGB (3 channels)"),
    "16-bit": ("image/png", png(np.zeros((400, 600), np.uint16)), "/act", 422, "16-bit"),
    "animated": ("image/png", animated_png(FRAME), "/policies/rgb/act", 422, "animated"),
    "truncated b64": (
        "application/json",
        {"image": b64(png(FRAME))[:-3], "reset": True},
        "/act",
        422,
        "base64",
    ),
    "not an image": ("application/json", {"image": b64(b"GIF89a....."), "reset": True}, "/act", 422, "PNG"),
    "npy pickle": ("application/x-npy", npy(np.array([{"a": 1}], dtype=object)), "/act", 422, "uint8"),
    "npy float": ("application/x-npy", npy(FRAME.astype(np.float32)), "/act", 422, "uint8"),
    "npy short": ("application/x-npy", npy(FRAME)[:-10], "/act", 422, "bytes of data"),
    "npy batch over the limit": (
        "application/x-npy",
        npy(np.zeros((17, *PIX.observation_shape), np.uint8)),
        "/act_batch",
        413,
        "batch limit",
    ),
    "npy shape": ("application/x-npy", npy(np.zeros((3, 3), np.uint8)), "/act", 422, "shape"),
    "jpeg": ("image/jpeg", b"\xff\xd8\xff", "/act", 415, "image/png"),
    "pixel 256": ("application/json", {"observation": np.full((2, 20, 75, 1), 256).tolist()}, "/act", 422, "255"),
    "wrong stack": (
        "application/json",
        {"observation": np.zeros((3, 20, 75, 1), int).tolist()},
        "/act",
        422,
        "[2, 20, 75, 1]",
    ),
    "bad session": (
        "application/json",
        {"image": b64(png(FRAME)), "session": "a b", "reset": True},
        "/act",
        422,
        "session",
    ),
    "huge png body": ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(1_000_000), "/act", 413, "limit"),
    "huge nested list": (
        "application/json",
        b'{"observation": [' + b"[[[0]]]," * 700_000 + b"[[[0]]]]}",
        "/act",
        413,
        "application/x-npy",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_images_get_a_4xx_and_the_server_lives(client: httpx.Client, case: str) -> None:
    kind, body, route, status, words = HOSTILE[case]
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    response = client.post(route, content=content, headers={"content-type": kind})
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()["error"]
    assert client.get("/readyz").status_code == 200
    ok(client.post("/policies/rgb/act", content=png(FRAME), headers={"content-type": "image/png"}))


@pytest.mark.parametrize(("route", "frames"), [("act", "png"), ("act_batch", "npy"), ("act_batch", "png")])
def test_simulate_sends_rendered_frames_and_scores_like_evaluate(
    url: str, artifacts: dict[str, Path], route: str, frames: str
) -> None:
    """`simulate` sends only env.render() frames; the server's frame stacks rebuild the env's observations exactly,
    so the returns equal the local evaluation's, episode by episode (same seeds)."""
    local = evaluate(load_policy(artifacts["pix"]), episodes=3, seed=5)
    remote = simulate(f"{url}/policies/pix", episodes=3, seed=5, batch=route == "act_batch", frames=frames)
    assert remote.evaluation.episode_returns == local.episode_returns
    assert remote.evaluation.episode_lengths == local.episode_lengths
    assert len(set(local.episode_returns)) > 1, "the hand-set policy acts on the motion between its two frames"
    assert len(remote.latencies_ms) == (sum(local.episode_lengths) if route == "act" else max(local.episode_lengths))


@pytest.fixture(scope="module", params=["cnn", "cnn_other"])
def cnn(request: pytest.FixtureRequest) -> str:
    """A CartPolePixels CNN policy: the env's default preprocessing, or another its config.json names."""
    return str(request.param)


@pytest.fixture(scope="module")
def cnn_returns(artifacts: dict[str, Path], cnn: str) -> list[float]:
    """`rlship evaluate` of the CNN policy: 2 episodes, eval seed 3 (the env made with the policy's preprocessing)."""
    evaluated = subprocess.run(
        [RLSHIP, "evaluate", str(artifacts[cnn]), "--episodes", "2", "--seed", "3", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(evaluated.stdout)["episode_returns"]


@pytest.mark.parametrize("frames", ["png", "npy"])
def test_simulate_cli_on_cartpole_pixels_matches_evaluate_cli(
    url: str, cnn: str, cnn_returns: list[float], frames: str
) -> None:
    """`rlship simulate --env rlship/CartPolePixels-v1` (Gymnasium's rendered frames over HTTP) and `rlship
    evaluate` (the env's own observations, in process) play the same episodes with a CNN policy, whichever
    preprocessing it was made with: the server's sessions stack frames as the policy's config.json says."""
    command = [RLSHIP, "simulate", "--url", f"{url}/policies/{cnn}", "--env", "rlship/CartPolePixels-v1"]
    simulated = subprocess.run(
        [*command, "--episodes", "2", "--seed", "3", "--frames", frames],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in simulated.stdout.splitlines() if x.startswith("episode returns:"))
    assert line == f"episode returns: [{', '.join(f'{r:g}' for r in cnn_returns)}]", simulated.stdout


def test_sessions_work_over_one_connection_with_several_workers(artifacts: dict[str, Path]) -> None:
    """README "Sessions and several workers": a keep-alive connection stays on the worker that accepted it, so a
    session sent over one connection keeps its stack whatever --workers is; its answers are the env's."""
    policy = load_policy(artifacts["pix"])
    frames, observations = rendered(seed=51, steps=6)
    expected = policy.act(np.stack(observations)).q_values
    with served(f"pix={artifacts['pix']}", "--workers", "2") as base, httpx.Client(base_url=base, timeout=30) as c:
        got = []
        for t, frame in enumerate(frames):
            query = {"session": "one-connection", "reset": str(t == 0).lower()}
            got.append(ok(c.post("/act", content=png(frame), params=query, headers={"content-type": "image/png"})))
    np.testing.assert_allclose([a["q_values"] for a in got], expected, rtol=1e-5, atol=1e-4)


def test_a_vector_policy_beside_a_pixel_one_keeps_its_own_body_bound(client: httpx.Client) -> None:
    """The server-wide body bound is the largest any served policy needs (the pixel policies' megabytes); a
    chunked body, which has no Content-Length, to the vector policy is still refused by its own bound."""
    # valid JSON, one row, padded to 500 kB: the vector policy's bound is a few kB (16 rows of 4 numbers)
    body = b'{"observations": [[0.0, 0.0, 0.0, 0.0]]' + b" " * 500_000 + b"}"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = client.post("/policies/vec/act_batch", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "bytes is over this server's limit" in response.json()["error"]
    assert ok(client.post("/policies/vec/act", json={"observation": [0.0, 0.0, 0.0, 0.0]}))["action"] in (0, 1)
