"""Publishing policies on the Hugging Face Hub: package a run folder (model card, replay video, fresh evaluation),
push it in one commit, and pull it back (`rlship.load_policy("hf://OWNER/NAME@REVISION")`).

Modules: `package` (the folder to upload), `card` (README.md with the Hub's metadata), `video` (replay.mp4),
`push` (upload), `pull` (download), `errors` (Hub failures as messages that say what to do), `cli` (the verbs).
huggingface_hub and imageio are imported inside the functions that need them, so `import rlship` stays fast.
"""
