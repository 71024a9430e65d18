from rlship.cli import run

run()
