"""Publishing to the Hugging Face Hub (model card, replay video, package, push, pull).

Not built yet: its own issue fills this package. Until then `rlship.load_policy("hf://...")` says so clearly.
"""
