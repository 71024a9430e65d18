"""The `network` entry of config.json: `NetworkSpec`, what a policy's network is, checked field by field and sized
before anything is built. It imports no torch: loading an artifact and acting in NumPy (rlship/numpy_forward.py)
read it as much as building the torch network does (rlship/networks.py, where the head names are explained).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from rlship import schema
from rlship.errors import UsageError

# The hidden activations by name (rlship/networks.py maps them to torch modules, numpy_forward.py to functions)
ACTIVATION_NAMES = ("tanh", "relu")
HEAD_KINDS = ("logits", "value", "q_values", "mean", "log_std")
# The most parameters a network may have (100M float32: 400 MB), checked from the description before anything is
# allocated, so a config.json or a --hidden-sizes flag cannot make rlship try to allocate gigabytes.
MAX_PARAMETERS = 100_000_000
MAX_LAYERS = 64  # hidden layers a config.json may describe


@dataclass(frozen=True)
class NetworkSpec:
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    # head name -> output size
    heads: dict[str, int] = field(default_factory=dict)
    shared_trunk: bool = False
    log_std: int = 0  # size of a state-independent log-std parameter (Gaussian policies); 0: none

    def to_dict(self) -> dict[str, object]:
        desc = {"kind": "mlp_heads", **asdict(self), "hidden_sizes": list(self.hidden_sizes)}
        if not self.log_std:
            del desc["log_std"]  # discrete networks' config.json stays as it was
        return desc

    @classmethod
    def from_dict(cls, desc: object, field: str = "network") -> NetworkSpec:
        """The `network` entry of config.json, checked field by field (a `schema.ConfigError` names the field):
        a known kind, at most MAX_LAYERS positive hidden sizes, a known activation, heads an object of known head
        names to positive sizes, shared_trunk a boolean. The total size is checked by `check_size`."""
        desc = schema.mapping(desc, field)
        schema.choice(desc.get("kind", "mlp_heads"), f"{field}.kind", ("mlp_heads",))
        sizes = schema.sequence(schema.required(desc, "hidden_sizes", field), f"{field}.hidden_sizes", 0, MAX_LAYERS)
        heads = schema.mapping(schema.required(desc, "heads", field), f"{field}.heads")
        if not heads:
            raise schema.ConfigError(f"{field}.heads", f"must name at least one of {list(HEAD_KINDS)}")
        spec = cls(
            hidden_sizes=tuple(
                schema.integer(h, f"{field}.hidden_sizes[{i}]", 1, MAX_PARAMETERS) for i, h in enumerate(sizes)
            ),
            activation=schema.choice(
                schema.required(desc, "activation", field), f"{field}.activation", ACTIVATION_NAMES
            ),
            heads={
                schema.choice(name, f"{field}.heads", HEAD_KINDS): schema.integer(
                    size, f"{field}.heads.{name}", 1, MAX_PARAMETERS
                )
                for name, size in heads.items()
            },
            shared_trunk=schema.boolean(desc.get("shared_trunk", False), f"{field}.shared_trunk"),
            log_std=schema.integer(desc.get("log_std", 0), f"{field}.log_std", 0, MAX_PARAMETERS),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATION_NAMES)}")
        unknown = set(self.heads) - set(HEAD_KINDS)
        if unknown or not self.heads:
            raise ValueError(f"network heads must be a non-empty subset of {HEAD_KINDS}; got {sorted(self.heads)}")
        if any(h <= 0 for h in self.hidden_sizes):
            raise ValueError(f"hidden sizes must be positive; got {list(self.hidden_sizes)}")
        if any(size <= 0 for size in self.heads.values()):
            raise ValueError(f"head sizes must be positive; got {self.heads}")
        if self.log_std and ("log_std" in self.heads or self.heads.get("mean") != self.log_std):
            raise ValueError(
                f"a log_std parameter of size {self.log_std} needs a 'mean' head of that size and no 'log_std' head; "
                f"got heads {self.heads}"
            )

    def parameter_count(self, obs_dim: int) -> int:
        """Parameters `HeadsNetwork(obs_dim, self)` holds, computed without building it."""

        def linear_stack(sizes: tuple[int, ...]) -> int:
            return sum(a * b + b for a, b in itertools.pairwise(sizes))

        if self.shared_trunk:
            width = self.hidden_sizes[-1] if self.hidden_sizes else obs_dim
            trunk = linear_stack((obs_dim, *self.hidden_sizes))
            return self.log_std + trunk + sum(linear_stack((width, size)) for size in self.heads.values())
        return self.log_std + sum(linear_stack((obs_dim, *self.hidden_sizes, size)) for size in self.heads.values())

    def check_size(self, obs_dim: int) -> None:
        """A UsageError (a ValueError) when the network would hold more than MAX_PARAMETERS (before it is built)."""
        count = self.parameter_count(obs_dim)
        if count > MAX_PARAMETERS:
            raise UsageError(
                f"the network {list(self.hidden_sizes)} with heads {self.heads} on {obs_dim} inputs would hold "
                f"{count:,} parameters, more than rlship builds ({MAX_PARAMETERS:,}); use smaller hidden sizes"
            )
