"""The HTTP protocol of a served policy: request and response schemas (pydantic), and the checks that turn a
client's mistake into a 4xx whose message says what the loaded policy expects.

Kept free of BentoML so the benchmark's bare Starlette endpoint runs the very same parsing and forward pass.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from rlship.errors import ObservationError
from rlship.policy import ActResult, Policy
from rlship.serving import limits

DEFAULT_MAX_BATCH = 4096
# A JSON number takes at most ~25 bytes ("-0.12345678901234567e-300,"); bodies beyond the largest allowed batch
# at that size are refused by their Content-Length before they are read.
BYTES_PER_NUMBER = 32


class _Request(BaseModel):
    # strict: "1.5" is not a number and 1 is not a bool; forbid: a misspelt field is named, not ignored
    model_config = ConfigDict(strict=True, extra="forbid")


# The examples are the embedded CartPole-v1 policy's real answers; they show in BentoML's /docs page.
class ActRequest(_Request):
    """A vector policy's /act body as the lean route parses it (one observation in, one action out). What every
    kind of policy may be sent, as the OpenAPI document shows it: `ActBody`."""

    model_config = ConfigDict(json_schema_extra={"example": {"observation": [0.01, 0.0, 0.02, 0.0]}})
    observation: list[float] = Field(description="one observation, shaped like the policy's observation space")
    deterministic: bool = Field(True, description="greedy action (true) or a sample from the probabilities")
    seed: int | None = Field(None, ge=0, description="seed for the sample when deterministic is false")


class ActBatchRequest(_Request):
    """A vector policy's /act_batch body as the lean route parses it (many observations in, one action per row
    out); for every kind of policy: `ActBatchBody`."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"observations": [[0.01, 0.0, 0.02, 0.0], [0.1, 0.5, -0.05, -0.4]]}}
    )
    observations: list[list[float]] = Field(description="a batch of observations, one per row")
    deterministic: bool = Field(True, description="greedy actions (true) or samples from the probabilities")
    seed: int | None = Field(None, ge=0, description="seed for the samples when deterministic is false")


def _alternatives(schema: dict[str, Any]) -> None:
    """A union field's schema as `oneOf` its alternatives. BentoML's OpenAPI document and /schema.json keep only the
    first branch of pydantic's `anyOf` (BentoML 1.4's `_flatten_field`), so `int | list[float]` read as an integer;
    `oneOf` they keep whole. The `null` branch is left out (OpenAPI 3.0 has no null type; the default says it)."""
    schema["oneOf"] = [branch for branch in schema.pop("anyOf") if branch.get("type") != "null"]


# An image policy's whole observation as JSON: nested lists (frame_stack, height, width, channels) of pixels
Pixel = Annotated[int, Field(ge=0, le=255)]
ImageObservation = list[list[list[list[Pixel]]]]


class ActBody(_Request):
    """POST /act as JSON, for every kind of policy: what BentoML's OpenAPI document shows, what its client sends and
    what the RLSHIP_PLAIN_API path validates. The lean routes parse the same bodies with the narrower model of the
    policy they serve (`ActRequest`; `pixels.ImageActRequest`), which say what is wrong in the policy's terms."""

    model_config = ConfigDict(json_schema_extra={"example": {"observation": [0.01, 0.0, 0.02, 0.0]}})
    observation: list[float] | ImageObservation | None = Field(
        None,
        description="one observation: a list of numbers shaped like the policy's observation space (vector "
        "policies), or an image policy's whole observation as nested lists (frame_stack, height, width, channels) "
        "of integers 0..255, oldest frame first",
        json_schema_extra=_alternatives,
    )
    image: str | None = Field(
        None, description="image policies, instead of observation: one raw frame as rendered, a base64 PNG"
    )
    session: str | None = Field(
        None, description="image policies, with image: the id of the episode whose frame stack the server keeps"
    )
    reset: bool = Field(False, description="image policies, with image: true on an episode's first frame")
    deterministic: bool = Field(True, description="greedy action (true) or a sample from the probabilities")
    seed: int | None = Field(None, ge=0, description="seed for the sample when deterministic is false")


class ActBatchBody(_Request):
    """POST /act_batch as JSON, for every kind of policy (as `ActBody`, one row per observation or frame)."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"observations": [[0.01, 0.0, 0.02, 0.0], [0.1, 0.5, -0.05, -0.4]]}}
    )
    observations: list[list[float]] | list[ImageObservation] | None = Field(
        None,
        description="a batch of observations, one per row: lists of numbers (vector policies) or image policies' "
        "whole observations as nested lists (frame_stack, height, width, channels) of integers 0..255",
        json_schema_extra=_alternatives,
    )
    images: list[str] | None = Field(
        None, description="image policies, instead of observations: raw frames as rendered, base64 PNGs"
    )
    sessions: list[str] | None = Field(None, description="image policies, with images: one session id per frame")
    reset: bool | list[bool] = Field(
        False,
        description="image policies, with images: true on an episode's first frame; one value, or one per frame",
        json_schema_extra=_alternatives,
    )
    deterministic: bool = Field(True, description="greedy actions (true) or samples from the probabilities")
    seed: int | None = Field(None, ge=0, description="seed for the samples when deterministic is false")


class InfoRequest(_Request):
    """GET /policy, or POST /policy with an empty body or {} (BentoML's client posts)."""


class _Answer(BaseModel):
    # no return annotation on purpose: pydantic would take it for the JSON schema of the answer (OpenAPI)
    @model_serializer(mode="wrap")
    def _fields_it_has(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """The fields this policy's answer has, as the lean routes send them: a field it lacks (probabilities of a
        Box policy, value of a DQN one) is left out, not null, in the answers of the RLSHIP_PLAIN_API path too."""
        return {name: value for name, value in handler(self).items() if value is not None}


class ActResponse(_Answer):
    model_config = ConfigDict(
        json_schema_extra={"example": {"action": 1, "probabilities": [0.3992, 0.6008], "value": 48.9588}}
    )
    action: int | list[float] = Field(
        description="the action: an integer (Discrete actions) or a list of numbers, the Box action space's shape "
        "flattened, within its bounds",
        json_schema_extra=_alternatives,
    )
    probabilities: list[float] | None = Field(None, description="the action distribution (Discrete actions only)")
    mean: list[float] | None = Field(None, description="the Gaussian's mean, before bounding (Box actions only)")
    std: list[float] | None = Field(None, description="the Gaussian's standard deviation (Box actions only)")
    value: float | None = Field(None, description="state value (actor-critic policies only; absent otherwise)")
    q_values: list[float] | None = Field(None, description="action values (value-based policies only)")


class ActBatchResponse(_Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "actions": [1, 0],
                "probabilities": [[0.3992, 0.6008], [0.9898, 0.0102]],
                "values": [48.9588, 48.9547],
            }
        }
    )
    actions: list[int] | list[list[float]] = Field(
        description="one action per row: integers (Discrete actions) or lists of numbers (Box actions)",
        json_schema_extra=_alternatives,
    )
    probabilities: list[list[float]] | None = Field(None, description="action distributions (Discrete actions)")
    mean: list[list[float]] | None = Field(None, description="the Gaussians' means (Box actions only)")
    std: list[list[float]] | None = Field(None, description="the Gaussians' standard deviations (Box actions only)")
    values: list[float] | None = Field(None, description="state values (actor-critic policies only)")
    q_values: list[list[float]] | None = Field(None, description="action values (value-based policies only)")


class PolicyInfo(BaseModel):
    """GET /policy: which policy is loaded, what it acts on, how it scored, and where it came from."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "name": "default",
                "env_id": "CartPole-v1",
                "env_kwargs": {},
                "algorithm": "ppo",
                "observation_space": {"type": "Box", "shape": [4], "dtype": "float32"},
                "action_space": {"type": "Discrete", "n": 2, "start": 0},
                "action_distribution": "softmax",
                "random_actions": False,
                "outputs": ["logits", "value"],
                "evaluation": {"mean_reward": 500.0, "std_reward": 0.0, "metric": "500.00 +/- 0.00"},
                "source": "default",
                "revision": None,
                "generation": 0,
                "rlship_version": "0.1.0",
                "max_batch": 4096,
            }
        }
    )
    name: str = Field(description="the name it is served under (/policies/{name}/...)")
    env_id: str
    env_kwargs: dict[str, Any]
    algorithm: str
    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    action_distribution: str = Field(description="softmax, epsilon_greedy, uniform or gaussian (Box actions)")
    action_bounds: dict[str, Any] | None = Field(
        None,
        description="Box actions: low and high, how samples are brought into them (clip or tanh) and the log std's "
        "kind (state_independent or state_dependent)",
    )
    observation_preprocessing: dict[str, Any] | None = Field(
        None,
        description="pixel policies: how one rendered frame becomes part of the observation (crop, resize, grey, "
        "frame stack), as in config.json",
    )
    image_input: dict[str, Any] | None = Field(
        None,
        description="pixel policies: what to send (the whole stack, or one raw frame per step with a session), the "
        "accepted forms and their limits",
    )
    observation_normalization: dict[str, Any] | None = Field(
        None, description="the normalisation applied to observations inside the policy: mean, var, count, clip, epsilon"
    )
    random_actions: bool = Field(
        description="true for the random baseline: its actions are drawn at random even when deterministic is asked"
    )
    note: str | None = Field(None, description="what a client should know about this policy's answers")
    outputs: list[str] = Field(description="the network's heads")
    evaluation: dict[str, Any] | None = Field(description="the summary of results.json, when the policy has one")
    source: str | None
    revision: str | None = Field(description="the Hub commit the files were downloaded at (Hub sources)")
    generation: int = Field(description="0 when served from start-up; each hot swap of this name adds one")
    rlship_version: str
    max_batch: int


class PoliciesResponse(BaseModel):
    """GET /policies: every served policy, the one /act answers with first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "default": "cartpole",
                "policies": [
                    {"name": "cartpole", "env_id": "CartPole-v1", "algorithm": "ppo", "source": "runs/ppo-s0"},
                    {"name": "random", "env_id": "CartPole-v1", "algorithm": "random", "source": "runs/random"},
                ],
            }
        }
    )
    default: str = Field(description="the policy /act, /act_batch and /policy answer with")
    policies: list[dict[str, Any]] = Field(description="name, env_id, algorithm, source, revision, generation")


class SwapRequest(_Request):
    """PUT /policies/{name} (admin): serve the policy at `source` under `name` from now on."""

    source: str = Field(min_length=1, max_length=1024, description="a policy folder, hf://OWNER/NAME[@REV], default")


class RequestError(Exception):
    """A client's mistake: answered with `status` and a JSON body {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def expected_body(policy: Policy, batch: bool) -> str:
    """What a request to the route should look like, for the loaded policy."""
    (dim,) = policy.spec.obs_shape
    numbers = ", ".join(["x"] * min(dim, 4)) + (", ..." if dim > 4 else "")
    if batch:
        return f'{{"observations": [[{numbers}], ...], "deterministic": true}} with rows of {dim} numbers'
    return f'{{"observation": [{numbers}], "deterministic": true}} with {dim} numbers'


def vector_request(body: ActBody | ActBatchBody, policy: Policy) -> ActRequest | ActBatchRequest:
    """A vector policy's request from a body validated by the documented model (`ActBody`, which also admits image
    policies' fields), or RequestError (422) naming what this policy takes instead."""
    batch = isinstance(body, ActBatchBody)
    image_fields = ("images", "sessions") if batch else ("image", "session")
    given = [name for name in image_fields if getattr(body, name) is not None] + (["reset"] if body.reset else [])
    if given:
        raise RequestError(
            422,
            f"{given[0]} is for image policies; this {policy.spec.env_id} policy takes vector observations. "
            f"Expected {expected_body(policy, batch)}.",
        )
    if isinstance(body, ActBatchBody):
        if body.observations is None:
            raise RequestError(422, f"observations is missing. Expected {expected_body(policy, batch)}.")
        return ActBatchRequest.model_construct(
            observations=body.observations, deterministic=body.deterministic, seed=body.seed
        )
    if body.observation is None:
        raise RequestError(422, f"observation is missing. Expected {expected_body(policy, batch)}.")
    return ActRequest.model_construct(observation=body.observation, deterministic=body.deterministic, seed=body.seed)


def max_body_bytes(policy: Policy, max_batch: int) -> int:
    """The largest body a vector policy's requests need (a pixel policy's: `registry.max_body_bytes`)."""
    return 4096 + max_batch * int(np.prod(policy.spec.obs_shape)) * BYTES_PER_NUMBER


def parse_request(body: bytes, policy: Policy, max_batch: int, batch: bool) -> tuple[np.ndarray, bool, int | None]:
    """(observations (N, *obs_shape) float32, deterministic, seed) from a request body, or RequestError."""
    model = ActBatchRequest if batch else ActRequest
    try:
        request = model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise RequestError(
                400, f"the body is not valid JSON ({errors[0]['msg']}); send {expected_body(policy, batch)}"
            ) from None
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:3])
        raise RequestError(
            422,
            f"invalid request ({details}). Expected {expected_body(policy, batch)} "
            f"({policy.spec.env_id} observations have shape {policy.spec.obs_shape}).",
        ) from None
    return check_request(request, policy, max_batch), request.deterministic, request.seed


def check_request(request: ActRequest | ActBatchRequest, policy: Policy, max_batch: int) -> np.ndarray:
    """The observations of a validated request as an array (N, *obs_shape) float32, or RequestError."""
    spec = policy.spec
    batch = isinstance(request, ActBatchRequest)
    rows = request.observations if isinstance(request, ActBatchRequest) else [request.observation]
    if len(rows) == 0:
        raise RequestError(422, f"observations is empty; send at least one. Expected {expected_body(policy, batch)}.")
    if len(rows) > max_batch:
        raise RequestError(
            413,
            f"batch of {len(rows)} observations is over this server's limit of {max_batch}; "
            "split it into smaller batches (the limit is set by `rlship serve --max-batch` / RLSHIP_MAX_BATCH)",
        )
    (dim,) = spec.obs_shape
    wrong = next((i for i, row in enumerate(rows) if len(row) != dim), None)
    if wrong is not None:
        which = f"observations[{wrong}]" if batch else "observation"
        raise RequestError(
            422,
            f"{which} has {len(rows[wrong])} numbers; {spec.env_id} observations have shape {spec.obs_shape}. "
            f"Expected {expected_body(policy, batch)}.",
        )
    try:
        return policy.check_observations(rows)
    except ObservationError as exc:  # NaN or infinity (1e999 parses as infinity)
        raise RequestError(422, f"{str(exc).rstrip('.')}. Expected {expected_body(policy, batch)}.") from None


def act(policy: Policy, body: bytes, max_batch: int, batch: bool, rng: np.random.Generator) -> dict[str, Any]:
    """The response fields for one request body: parse, forward pass, and the fields the policy has."""
    observations, deterministic, seed = parse_request(body, policy, max_batch, batch)
    return answer(policy, observations, deterministic, seed, batch, rng)


def answer(
    policy: Policy,
    observations: np.ndarray,
    deterministic: bool,
    seed: int | None,
    batch: bool,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The forward pass and the response fields the policy has (ActResponse / ActBatchResponse, None left out)."""
    result = policy.act(
        observations, deterministic=deterministic, rng=np.random.default_rng(seed) if seed is not None else rng
    )
    # JSON has no NaN or infinity: a non-finite answer is an error (limits.non_finite says whose)
    outputs = (result.probabilities, result.values, result.q_values, result.mean, result.std)
    if (problem := limits.non_finite(policy, outputs)) is not None:
        raise RequestError(*problem)
    if policy.spec.continuous:
        return _box_fields(result, batch)
    assert result.probabilities is not None
    if batch:
        fields: dict[str, Any] = {
            "actions": result.actions.tolist(),
            "probabilities": result.probabilities.tolist(),
        }
        if result.values is not None:
            fields["values"] = result.values.tolist()
        if result.q_values is not None:
            fields["q_values"] = result.q_values.tolist()
        return fields
    fields = {"action": int(result.actions[0]), "probabilities": result.probabilities[0].tolist()}
    if result.values is not None:
        fields["value"] = float(result.values[0])
    if result.q_values is not None:
        fields["q_values"] = result.q_values[0].tolist()
    return fields


def _box_fields(result: ActResult, batch: bool) -> dict[str, Any]:
    """A Box policy's answer: actions, mean and std flattened per observation (a list of numbers each)."""
    assert result.mean is not None and result.std is not None
    n = len(result.actions)
    rows = {name: array.reshape(n, -1).tolist() for name, array in (("mean", result.mean), ("std", result.std))}
    actions = result.actions.reshape(n, -1).tolist()
    if batch:
        fields: dict[str, Any] = {"actions": actions, **rows}
        if result.values is not None:
            fields["values"] = result.values.tolist()
        return fields
    fields = {"action": actions[0], "mean": rows["mean"][0], "std": rows["std"][0]}
    if result.values is not None:
        fields["value"] = float(result.values[0])
    return fields


RANDOM_NOTE = (
    "this policy's actions are random: its action distribution is uniform and it has no greedy action, "
    "so it samples even when deterministic is true (the random baseline)"
)


def policy_info(policy: Policy, max_batch: int, name: str = "default", generation: int = 0) -> dict[str, Any]:
    """GET /policy (`PolicyInfo`): which policy is loaded, what it acts on, how it scored, where it came from.

    Computed once per load (it reads results.json), never per request."""
    import rlship
    from rlship.spaces import space_to_dict

    spec = policy.spec
    random_actions = spec.action_distribution == "uniform"
    info: dict[str, Any] = {
        "name": name,
        "env_id": spec.env_id,
        "env_kwargs": spec.env_kwargs,
        "algorithm": spec.algorithm,
        "observation_space": space_to_dict(spec.observation_space),
        "action_space": space_to_dict(spec.action_space),
        "action_distribution": spec.action_distribution,
        "random_actions": random_actions,
        "outputs": sorted(spec.network.heads),
        "evaluation": _evaluation(policy),
        "source": policy.source,
        "revision": policy.revision,
        "generation": generation,
        "rlship_version": rlship.__version__,
        "max_batch": max_batch,
    }
    if random_actions:
        info["note"] = RANDOM_NOTE
    if spec.frames is not None:
        info["observation_preprocessing"] = spec.frames.to_dict()
        # every pixel's bounds are 0 and 255: say so once rather than list them (50,000 numbers for CartPole pixels)
        info["observation_space"] = {**info["observation_space"], "low": 0, "high": 255}
    if spec.continuous:
        bounding = spec.bounding
        info["action_bounds"] = {
            "low": bounding.low.ravel().tolist(),
            "high": bounding.high.ravel().tolist(),
            "bound": spec.bound,
            "log_std": spec.log_std,
        }
    norm = policy.obs_norm
    if norm is not None:
        info["observation_normalization"] = {
            "mean": norm.mean.ravel().tolist(),
            "var": norm.var.ravel().tolist(),
            "count": norm.count,
            "clip": norm.clip,
            "epsilon": norm.epsilon,
        }
    return info


EVALUATION_KEYS = ("mean_reward", "std_reward", "n_eval_episodes", "deterministic", "seed", "date", "solved")


def _evaluation(policy: Policy) -> dict[str, Any] | None:
    """The summary of the results.json beside the policy's files, or None (a policy made in memory, or no file).
    `load_policy` read and checked the file, so a bad one never reaches a worker."""
    results = policy.results
    if results is None:
        return None  # results.json is optional: a policy folder needs only config.json and the weights
    data = results.to_dict()
    summary = {k: data[k] for k in EVALUATION_KEYS}
    summary["metric"] = results.evaluation.metric
    return summary
