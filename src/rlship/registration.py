"""rlship's own envs, registered with Gymnasium under the `rlship/` namespace when `rlship` is imported.

Entry points are strings, so registering imports none of the games (nor anything heavy): the game's module is
imported by the first `gymnasium.make`. Registering twice (a re-import, or a module reload) keeps the first
registration instead of making Gymnasium warn about an override.
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

ENVS: dict[str, dict[str, Any]] = {
    # CartPole-v1 from its screen (issue 11): CartPole-v1's time limit and "solved" threshold. `gymnasium.make`
    # renders with Gymnasium's own renderer (evaluation); `gymnasium.make_vec` (training) draws with NumPy.
    "rlship/CartPolePixels-v1": dict(
        entry_point="rlship.games.cartpole_pixels:CartPolePixelsEnv",
        vector_entry_point="rlship.games.cartpole_pixels:CartPolePixelsVectorEnv",
        max_episode_steps=500,
        reward_threshold=475.0,
    ),
    # No reward_threshold: Pixelcopter has no published "solved" score (PLE and gym_pygame define none), and
    # rlship's stop rule would treat one as a goal. The time limit is the Hugging Face course's `max_t`, the
    # step cap of its training and evaluation loops, so scores here compare with the course's.
    "rlship/Pixelcopter-v0": dict(
        entry_point="rlship.games.pixelcopter:PixelcopterEnv",
        max_episode_steps=10_000,
    ),
}


def register_envs() -> None:
    for env_id, kwargs in ENVS.items():
        if env_id not in registry:
            register(id=env_id, **kwargs)


register_envs()
