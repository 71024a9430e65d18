"""The HTTP protocol of a served policy: request and response schemas (pydantic), and the checks that turn a
client's mistake into a 4xx whose message says what the loaded policy expects.

Kept free of BentoML so the benchmark's bare Starlette endpoint runs the very same parsing and forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from rlship.errors import ObservationError
from rlship.policy import Policy
from rlship.run_folder import read_results
from rlship.serving import limits

DEFAULT_MAX_BATCH = 4096
# A JSON number takes at most ~25 bytes ("-0.12345678901234567e-300,"); bodies beyond the largest allowed batch
# at that size are refused by their Content-Length before they are read.
BYTES_PER_NUMBER = 32


class _Request(BaseModel):
    # strict: "1.5" is not a number and 1 is not a bool; forbid: a misspelt field is named, not ignored
    model_config = ConfigDict(strict=True, extra="forbid")


class ActRequest(_Request):
    observation: list[float] = Field(description="one observation, shaped like the policy's observation space")
    deterministic: bool = Field(True, description="greedy action (true) or a sample from the probabilities")
    seed: int | None = Field(None, ge=0, description="seed for the sample when deterministic is false")


class ActBatchRequest(_Request):
    observations: list[list[float]] = Field(description="a batch of observations, one per row")
    deterministic: bool = True
    seed: int | None = Field(None, ge=0)


class ActResponse(BaseModel):
    action: int
    probabilities: list[float]
    value: float | None = Field(None, description="state value (actor-critic policies only)")
    q_values: list[float] | None = Field(None, description="action values (value-based policies only)")


class ActBatchResponse(BaseModel):
    actions: list[int]
    probabilities: list[list[float]]
    values: list[float] | None = None
    q_values: list[list[float]] | None = None


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


def max_body_bytes(policy: Policy, max_batch: int) -> int:
    return 4096 + max_batch * int(np.prod(policy.spec.obs_shape)) * BYTES_PER_NUMBER


def parse_request(body: bytes, policy: Policy, max_batch: int, batch: bool) -> tuple[np.ndarray, bool, int | None]:
    """(observations (N, *obs_shape) float32, deterministic, seed) from a request body, or RequestError."""
    model = ActBatchRequest if batch else ActRequest
    spec = policy.spec
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
            f"({spec.env_id} observations have shape {spec.obs_shape}).",
        ) from None
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
        observations = policy.check_observations(rows)
    except ObservationError as exc:  # NaN or infinity (1e999 parses as infinity)
        raise RequestError(422, f"{str(exc).rstrip('.')}. Expected {expected_body(policy, batch)}.") from None
    return observations, request.deterministic, request.seed


def act(policy: Policy, body: bytes, max_batch: int, batch: bool, rng: np.random.Generator) -> dict[str, Any]:
    """The response fields for one request body: parse, forward pass, and the fields the policy has."""
    observations, deterministic, seed = parse_request(body, policy, max_batch, batch)
    result = policy.act(
        observations, deterministic=deterministic, rng=np.random.default_rng(seed) if seed is not None else rng
    )
    limits.check_finite(policy, (result.probabilities, result.values, result.q_values))  # JSON has no NaN
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


def policy_info(policy: Policy, max_batch: int) -> dict[str, Any]:
    """GET /policy: which policy is loaded, what it acts on, how it scored, and where it came from.

    Computed once at start-up (it reads results.json), never per request."""
    import rlship
    from rlship.spaces import space_to_dict

    spec = policy.spec
    return {
        "env_id": spec.env_id,
        "env_kwargs": spec.env_kwargs,
        "algorithm": spec.algorithm,
        "observation_space": space_to_dict(spec.observation_space),
        "action_space": space_to_dict(spec.action_space),
        "action_distribution": spec.action_distribution,
        "outputs": sorted(spec.network.heads),
        "evaluation": _evaluation(policy),
        "source": policy.source,
        "revision": policy.revision,
        "rlship_version": rlship.__version__,
        "max_batch": max_batch,
    }


EVALUATION_KEYS = ("mean_reward", "std_reward", "n_eval_episodes", "deterministic", "seed", "date", "solved")


def _evaluation(policy: Policy) -> dict[str, Any] | None:
    """The summary of the results.json beside the policy's files, or None (a policy made in memory, or no file).
    `load_policy` has already checked the file, so a bad one never reaches a worker."""
    if policy.folder is None:
        return None
    results = read_results(policy.folder)
    if results is None:
        return None  # results.json is optional: a policy folder needs only config.json and the weights
    data = results.to_dict()
    summary = {k: data[k] for k in EVALUATION_KEYS}
    summary["metric"] = results.evaluation.metric
    return summary
