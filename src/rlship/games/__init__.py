"""Games written for rlship as Gymnasium envs (registered under `rlship/` by `rlship.registration`)."""
