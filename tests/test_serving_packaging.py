"""The Docker image's recipe (linted; no Docker engine runs here) and the bento (`bentoml build`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run([str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_serves_on_3000_as_a_non_root_user_with_a_readiness_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert "EXPOSE 3000" in text
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", text, re.M)
    # the README's install steps: the pinned CPU build of torch first, then rlship with the serve extra
    assert "-c constraints-cpu.txt torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert '".[serve]"' in text


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def test_bentofile_installs_what_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["serve"]}
    bento = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert {_name(r) for r in bento["python"]["packages"]} == declared


def test_bentoml_build_packs_the_service(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run(
        [str(BIN / "bentoml"), "build", "--output", "tag"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    assert name == "rlship_policy"
    assert (bento / "src" / "service.py").is_file()
    assert (bento / "src" / "src" / "rlship" / "serving" / "service.py").is_file()
    assert (bento / "src" / "src" / "rlship" / "default_policy" / "model.safetensors").is_file()
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "service:PolicyService"
