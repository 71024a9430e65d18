# rlship policy server: `rlship serve` (BentoML) on port 3000, CPU only.
#   docker build -t rlship-serve .
#   docker run -p 3000:3000 rlship-serve                                   # the embedded CartPole-v1 policy
#   docker run -p 3000:3000 -v "$PWD/runs/ppo-CartPole-v1-s0:/policy:ro" -e RLSHIP_POLICY=/policy rlship-serve
#   docker run -p 3000:3000 -e RLSHIP_POLICY=hf://OWNER/NAME@REVISION rlship-serve
#   docker run -p 127.0.0.1:3000:3000 rlship-serve                       # published on the host's loopback only
# The server's bounds (README "Limits of the server") are set below with ENV; the body limit follows
# RLSHIP_MAX_BATCH unless RLSHIP_MAX_BODY is set. RLSHIP_MAX_CONNECTIONS must stay below the container's
# `ulimit -n` minus 256 (Docker's default limit is far above it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 rlship
WORKDIR /app

# The same install steps as the README: the CPU build of torch first (constraints-cpu.txt pins its version;
# an unpinned torch from PyPI is a multi-GB CUDA build), then rlship with its serve extra.
COPY constraints-cpu.txt pyproject.toml README.md ./
COPY src ./src
RUN pip install -c constraints-cpu.txt torch --index-url https://download.pytorch.org/whl/cpu \
    && pip install -c constraints-cpu.txt ".[serve]"

USER 10001
ENV RLSHIP_POLICY=default \
    RLSHIP_WORKERS=1 \
    RLSHIP_KEEP_ALIVE=5 \
    RLSHIP_HEADER_TIMEOUT=10 \
    RLSHIP_BODY_TIMEOUT=10 \
    RLSHIP_MAX_CONNECTIONS=4096 \
    RLSHIP_MAX_SESSIONS=1024 \
    RLSHIP_SESSION_IDLE=60 \
    BENTOML_DO_NOT_TRACK=True \
    HOME=/home/rlship \
    BENTOML_HOME=/home/rlship/bentoml
EXPOSE 3000

# Ready only once the policy is loaded and warmed up (BentoML's /readyz); slim images have no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/readyz', timeout=2)"]

# 0.0.0.0 inside the container only (the only way `-p` reaches it); the host side is chosen by `-p`.
CMD ["rlship", "serve", "--host", "0.0.0.0", "--port", "3000"]
