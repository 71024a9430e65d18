"""A small Hugging Face Hub for the tests: a real HTTP server (stdlib, one thread per connection) that speaks the
part of the Hub API huggingface_hub calls for pushing and pulling a model repo.

Routes (as huggingface_hub 2.x calls them): whoami-v2, validate-yaml, repos/create, repo info (`/api/models/ID`,
`.../revision/REV`), tree listing, preupload (every file "regular": inline base64 in the commit), commit (NDJSON,
with create_pr; onto a branch or a pull request's refs/pr/N, as the Hub takes them), branch create, and
`/{ID}/resolve/{REV}/{PATH}` (HEAD and GET, with X-Repo-Commit and ETag; REV a branch, refs/pr/N or a commit).
Repos live in memory as commits (sha -> files) and refs (branch -> sha). Tokens have a user and a role ("read" or
"write"); a user writes only to its own namespace, and whoami-v2 names the token's user (push's default repo id).
`fail(method, path regex, status)` makes a route answer an error the way the Hub does (JSON body with "error",
X-Error-Message). `requests` records what the client asked for. `point_hub_client_at` points the huggingface_hub
client of the test's process at a Hub URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

# Recognisable fake tokens: they must never show up in output, files or error messages.
TOKEN = "hf_rlshipSECRETwriteTOKEN0123456789"
READ_TOKEN = "hf_rlshipSECRETreadTOKEN0123456789"
BAD_TOKEN = "hf_rlshipSECRETunknownTOKEN01234567"


def point_hub_client_at(url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub pointed at the Hub at `url` (a FakeHub's, or one nothing answers at), with its cache and token
    file under `home`, TOKEN as the user's token, online, and rlship's default Hub timeout."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("RLSHIP_HUB_TIMEOUT", raising=False)
    # huggingface_hub reads these once, at import: set them on the module too for this process.
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    message: str
    description: str
    parent: str | None


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit sha
    pull_requests: int = 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, the NDJSON lines of a commit, or None
    authorized: bool  # an Authorization header was sent


class FakeHub:
    # True: a download of a revision the repo lacks ("../../x", "/etc/passwd", ...) answers with the file at main's
    # commit, as a careless or hostile Hub would; then only the client's own checks keep it out of the filesystem.
    any_revision = False

    def __init__(self, tokens: dict[str, tuple[str, str]]) -> None:
        self.tokens = tokens  # token -> (user, role)
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.failures: list[tuple[str, re.Pattern[str], int, str]] = []
        self._lock = threading.Lock()
        self._counter = 0
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path_pattern: str, status: int, message: str = "injected failure") -> None:
        self.failures.append((method, re.compile(path_pattern), status, message))

    def add_repo(self, repo_id: str, files: dict[str, bytes], private: bool = False, branch: str = "main") -> str:
        """Create (or add a commit to) a repo directly, as another client would have; returns the commit sha."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(repo_id, private))
            return self._commit(repo, branch, {**self._head_files(repo, branch), **files}, "seed", "")

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.refs[revision]].files)

    def downloads(self) -> list[str]:
        """Paths of every resolve request (HEAD or GET), as `ID/REV/PATH`."""
        return [r.path.lstrip("/") for r in self.requests if "/resolve/" in r.path]

    # --- internals ---
    def _head_files(self, repo: Repo, branch: str) -> dict[str, bytes]:
        sha = repo.refs.get(branch)
        return dict(repo.commits[sha].files) if sha else {}

    def _commit(self, repo: Repo, ref: str, files: dict[str, bytes], message: str, description: str) -> str:
        self._counter += 1
        sha = hashlib.sha1(f"{repo.repo_id}{self._counter}{message}".encode()).hexdigest()
        repo.commits[sha] = Commit(sha, files, message, description, repo.refs.get(ref))
        repo.refs[ref] = sha
        return sha


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub: every answer carries Content-Length

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
        pass

    # --- plumbing ---
    def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes = b"") -> None:
        data = raw if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body is not None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None, **body: Any
    ) -> None:
        extra = {"X-Error-Message": message, **(headers or {})}
        if code:
            extra["X-Error-Code"] = code
        self._answer(status, {"error": message, **body}, extra)

    def _user(self) -> tuple[str, str] | bool | None:
        """(user, role) for a valid token, None without a token, False for an unknown token."""
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        return self.hub.tokens.get(token, False)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "ndjson" in self.headers.get("Content-Type", ""):
            body: Any = [json.loads(line) for line in raw.splitlines() if line.strip()]
        elif raw and "json" in self.headers.get("Content-Type", ""):
            body = json.loads(raw)
        else:
            body = None
        user = self._user()
        with self.hub._lock:
            self.hub.requests.append(Request(self.command, path, query, body, bool(self.headers.get("Authorization"))))
            for method, pattern, status, message in self.hub.failures:
                if method == self.command and pattern.search(path):
                    self._error(status, message)
                    return
            if user is False:
                self._error(401, "Invalid credentials in Authorization header")
                return
            self._route(path, query, body, user or None)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle

    # --- routes ---
    def _route(self, path: str, query: dict[str, list[str]], body: Any, user: tuple[str, str] | None) -> None:
        hub = self.hub
        if path == "/api/whoami-v2":
            if user is None:
                return self._error(401, "Unauthorized")
            name, role = user
            return self._answer(
                200, {"type": "user", "name": name, "orgs": [], "auth": {"accessToken": {"role": role}}}
            )
        if path == "/api/validate-yaml":
            return self._answer(200, {})
        if path == "/api/repos/create" and self.command == "POST":
            if user is None:
                return self._error(401, "You must be authenticated to create a repo")
            namespace = body.get("organization") or user[0]
            repo_id = f"{namespace}/{body['name']}"
            if user[1] != "write" or namespace != user[0]:
                message = f'You don\'t have the rights to create a model under the namespace "{namespace}"'
                return self._error(403, message)
            if repo_id in hub.repos:
                return self._error(409, "You already created this model repo", url=f"{hub.url}/{repo_id}")
            repo = hub.repos[repo_id] = Repo(repo_id, private=body.get("visibility") == "private")
            hub._commit(repo, "main", {".gitattributes": b"*.safetensors filter=lfs\n"}, "initial commit", "")
            return self._answer(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit|branch)/(.+))?", path)
        if match:
            repo_id, action, rest = match.groups()
            return self._api(repo_id, action, rest, query, body, user)
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/(.+)", path)
        if match:
            return self._resolve(match.group(1), match.group(2), user)
        return self._error(404, f"no route {self.command} {path}")

    def _visible(self, repo_id: str, user: tuple[str, str] | None) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and (user is None or repo_id.split("/")[0] != user[0])):
            status = 401 if user is None else 404  # the Hub hides private repos: 401 anonymous, 404 otherwise
            self._error(status, "Repository not found", code="RepoNotFound")
            return None
        return repo

    def _api(
        self, repo_id: str, action: str | None, rest: str | None, query: dict[str, list[str]], body: Any, user: Any
    ) -> None:
        hub = self.hub
        repo = self._visible(repo_id, user)
        if repo is None:
            return None
        writes = action in ("preupload", "commit", "branch")
        if writes and (user is None or user[1] != "write" or repo_id.split("/")[0] != user[0]):
            return self._error(403, f"You don't have write access to {repo_id}")
        if action in (None, "revision", "tree"):
            revision = (rest or "main").split("/", 1)[0] if action == "tree" else (rest or "main")
            if action == "tree" and rest and rest.startswith("refs/pr/"):
                revision = "/".join(rest.split("/")[:3])
            sha = repo.refs.get(revision, revision if revision in repo.commits else None)
            if sha is None:
                return self._error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
            files = repo.commits[sha].files
            if action == "tree":
                tree = [{"type": "file", "path": p, "size": len(c), "oid": _blob_sha(c)} for p, c in files.items()]
                return self._answer(200, tree)
            return self._answer(
                200,
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": sha,
                    "private": repo.private,
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                },
            )
        if action == "preupload":
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in body["files"]
            ]
            return self._answer(200, {"files": files, "commitOid": repo.refs.get(rest or "main")})
        if action == "branch":
            if rest in repo.refs:
                return self._error(409, f"Reference {rest} already exists")
            start = (body or {}).get("startingPoint") or "main"
            repo.refs[rest or ""] = repo.refs.get(start, start)
            return self._answer(200, {})
        if action == "commit":
            branch = rest or "main"
            if branch not in repo.refs:
                return self._error(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
            header = next(line["value"] for line in body if line["key"] == "header")
            files = self.hub._head_files(repo, branch)
            for line in body:
                if line["key"] == "file":
                    files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                elif line["key"] == "deletedFile":
                    if line["value"]["path"] not in files:
                        return self._error(404, "A file with this name doesn't exist", code="EntryNotFound")
                    del files[line["value"]["path"]]
                elif line["key"] != "header":
                    return self._error(400, f"this test hub does not take {line['key']!r} lines")
            pr_url = None
            ref = branch
            if query.get("create_pr") == ["1"]:
                repo.pull_requests += 1
                ref = f"refs/pr/{repo.pull_requests}"
                repo.refs[ref] = repo.refs[branch]
                pr_url = f"{hub.url}/{repo_id}/discussions/{repo.pull_requests}"
            sha = hub._commit(repo, ref, files, header["summary"], header.get("description", ""))
            return self._answer(
                200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": pr_url}
            )
        return self._error(404, f"no route for {action}")

    def _resolve(self, repo_id: str, rest: str, user: Any) -> None:
        repo = self._visible(repo_id, user)
        if repo is None:
            return None
        # REV/PATH, where REV may itself hold slashes (refs/pr/1): take the longest ref that matches
        for ref in sorted(repo.refs, key=len, reverse=True) + list(repo.commits):
            if rest.startswith(ref + "/"):
                sha = repo.refs.get(ref, ref)
                filename = rest[len(ref) + 1 :]
                break
        else:
            if self.hub.any_revision:
                return self._resolve_any_revision(repo, rest)
            return self._error(404, f"Invalid rev id: {rest.split('/')[0]}", code="RevisionNotFound")
        content = repo.commits[sha].files.get(filename)
        if content is None:
            return self._error(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{_blob_sha(content)}"'}
        return self._answer(200, headers=headers, raw=content)

    def _resolve_any_revision(self, repo: Repo, rest: str) -> None:
        """`rest` is an unknown REV/PATH: serve PATH (a file name main has) from main's commit, whatever REV is."""
        sha = repo.refs["main"]
        for filename, content in repo.commits[sha].files.items():
            if rest.endswith("/" + filename):
                headers = {"X-Repo-Commit": sha, "ETag": f'"{_blob_sha(content)}"'}
                return self._answer(200, headers=headers, raw=content)
        return self._error(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": sha})
