"""A small fake Kaggle server (stdlib only) that the REAL kaggle client talks to through the LOCALHOST env + HTTP proxy.

It records every request, keeps state (kernels, datasets, blobs, submissions, competition files) and can inject
failures: `fail_next[Method] = (status, body, headers)`, `fail_next_put = 500`, `hang = {"Method"}`,
`drop_dataset_files = {path}` (listed as if never received), `shrink_dataset_files = {path}` (listed one byte short),
`finish_submission(...)`.

Today's GPU-session cap: with `gpu_session_cap = N`, a GPU push while N sessions run is refused the way Kaggle does
(200 with "Maximum batch GPU session count of N reached."); each accepted GPU push starts a session that reports
RUNNING and becomes COMPLETE after `session_polls` status polls (of any kernel); `start_sessions(n)` adds sessions
started elsewhere. `kernel_logs[slug]` lines are served on the log stream endpoint (SSE, ending with END_OF_LOG)."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeKaggle:
    def __init__(self):
        self.requests: list[dict] = []
        self.blobs: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}  # served under /files/<key>
        self.kernels: dict[str, dict] = {}
        # slug -> [(status, failureMessage), ...] popped in order
        self.kernel_status: dict[str, list[tuple[str, str]]] = {}
        self.kernel_outputs: dict[str, list[tuple[str, bytes]]] = {}
        self.datasets: dict[str, dict] = {}
        self.submissions: list[dict] = []
        self.competitions: dict[str, dict] = {}  # slug -> {"deadline": iso, "files": {name: bytes}, "forbidden": bool}
        self.limits = {"numToday": 0, "numAllowedNow": 5}
        self.fail_next: dict[str, tuple] = {}
        self.fail_next_put: int | None = None
        self.hang: set[str] = set()
        self.drop_dataset_files: set[str] = set()
        self.shrink_dataset_files: set[str] = set()
        self.list_page_size = 2  # small pages, so callers must follow nextPageToken
        self.gpu_session_cap: int | None = None
        self.session_polls = 2
        self.sessions: list[dict] = []  # {"slug": kernel or None (started elsewhere), "left": polls until COMPLETE}
        self.kernel_logs: dict[str, list[str]] = {}
        self.most_sessions = 0  # the most GPU sessions that ever ran at once
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    # ---- lifecycle
    def __enter__(self):
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def env(self) -> dict[str, str]:
        return {"HTTP_PROXY": self.base, "http_proxy": self.base, "NO_PROXY": "", "no_proxy": ""}

    def calls(self, method: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method]

    def next_id(self) -> int:
        self._counter += 1
        return self._counter

    # ---- RPCs: each returns (status, body[, headers])
    def rpc(self, method: str, body: dict, user: str):
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None:
            return 404, {"code": 404, "message": f"fake has no {method}"}
        return handler(body, user)

    def running_sessions(self) -> list[dict]:
        return [s for s in self.sessions if s["left"] > 0]

    def start_sessions(self, count: int, polls: int | None = None) -> None:
        self.sessions += [{"slug": None, "left": polls or self.session_polls} for _ in range(count)]

    def rpc_SaveKernel(self, body, user):
        slug = body["slug"]
        capped = self.gpu_session_cap is not None and body.get("enableGpu")
        if capped and len(self.running_sessions()) >= self.gpu_session_cap:
            return 200, {"error": f"Maximum batch GPU session count of {self.gpu_session_cap} reached."}
        kernel = self.kernels.setdefault(slug, {"versions": 0})
        kernel["versions"] += 1
        kernel["last"] = body
        kernel["model_sources"] = body.get("modelDataSources", [])
        if capped:
            self.sessions.append({"slug": slug, "left": self.session_polls})
            self.most_sessions = max(self.most_sessions, len(self.running_sessions()))
        return 200, {"ref": f"/code/{slug}", "url": f"https://www.kaggle.com/code/{slug}",
                     "versionNumber": kernel["versions"], "kernelId": 4242, "error": ""}

    def rpc_GetKernelSessionStatus(self, body, user):
        slug = f"{body['userName']}/{body['kernelSlug']}"
        for session in self.running_sessions():
            session["left"] -= 1
        own = [s for s in self.sessions if s["slug"] == slug]
        if slug not in self.kernel_status and own:
            return 200, {"status": "RUNNING" if own[-1]["left"] > 0 else "COMPLETE", "failureMessage": ""}
        queue = self.kernel_status.get(slug) or [("COMPLETE", "")]
        status, failure = queue.pop(0) if len(queue) > 1 else queue[0]
        return 200, {"status": status, "failureMessage": failure}

    def log_stream(self, slug: str) -> bytes:
        events = [f"data: {json.dumps({'stream_name': 'stdout', 'time': 0.0, 'data': line})}\n\n"
                  for line in self.kernel_logs.get(slug, [])]
        return ("".join(events) + "data: END_OF_LOG\n\n").encode()

    def rpc_ListKernelSessionOutput(self, body, user):
        slug = f"{body['userName']}/{body['kernelSlug']}"
        files = []
        for name, data in self.kernel_outputs.get(slug, []):
            key = f"out-{self.next_id()}"
            self.files[key] = data
            files.append({"fileName": name, "url": f"{self.base}/files/{key}"})
        return 200, {"files": files, "log": "[kernel log] done\n", "nextPageToken": ""}

    def rpc_GetDatasetStatus(self, body, user):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        if ref not in self.datasets:
            return 404, {"code": 404, "message": "Not found"}
        return 200, {"status": self.datasets[ref].get("status", "READY")}

    def rpc_GetDataset(self, body, user):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        if ref not in self.datasets:
            return 404, {"code": 404, "message": "Not found"}
        return 200, {"ref": ref, "currentVersionNumber": len(self.datasets[ref]["versions"])}

    def rpc_StartBlobUpload(self, body, user):
        token = f"blob-{self.next_id()}-{body['name']}"
        return 200, {"token": token, "createUrl": f"{self.base}/upload/{token}"}

    def finish_submission(self, ref: int, status: str, score: str = "", error: str = "") -> None:
        """What Kaggle's scorer would do: COMPLETE with a public score, or ERROR with a description."""
        sub = next(s for s in self.submissions if s["ref"] == ref)
        sub.update(status=status, publicScore=score, errorDescription=error)

    def _received_files(self, body) -> dict[str, int]:
        """path -> bytes as Kaggle lists them after processing: an uploaded folder zip comes back unpacked."""
        files: dict[str, int] = {}
        for item in body.get("files", []):
            token = item["token"]
            name, data = token.split("-", 2)[2], self.blobs.get(token, b"")
            if name.endswith(".zip"):
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    files.update({f"{name[:-4]}/{i.filename}": i.file_size for i in zf.infolist() if not i.is_dir()})
            else:
                files[name] = len(data)
        return files

    def rpc_ListDatasetFiles(self, body, user):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        if ref not in self.datasets:
            return 404, {"code": 404, "message": "Not found"}
        version = self.datasets[ref]["versions"][-1]
        listed = [{"name": n, "totalBytes": b - (n in self.shrink_dataset_files), "ref": f"{ref}/{n}"}
                  for n, b in sorted(self._received_files(version).items()) if n not in self.drop_dataset_files]
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or 20), self.list_page_size)
        more = start + size < len(listed)
        return 200, {"datasetFiles": listed[start:start + size], "nextPageToken": str(start + size) if more else ""}

    def rpc_CreateDataset(self, body, user):
        ref = f"{body['ownerSlug']}/{body['slug']}"
        self.datasets[ref] = {"versions": [body], "status": "READY"}
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok", "error": ""}

    def rpc_CreateDatasetVersion(self, body, user):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        if ref not in self.datasets:
            return 404, {"code": 404, "message": "Not found"}
        self.datasets[ref]["versions"].append(body["body"])
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok", "error": ""}

    def rpc_StartSubmissionUpload(self, body, user):
        if self.competitions.get(body["competitionName"], {}).get("forbidden"):
            return 403, {"code": 403, "message": "You must accept this competition's rules"}
        token = f"sub-{self.next_id()}"
        return 200, {"token": token, "createUrl": f"{self.base}/upload/{token}"}

    def _add_submission(self, body, file_name):
        ref = 1000 + self.next_id()
        self.submissions.insert(0, {"ref": ref, "date": "2026-11-25T01:02:03.000Z",
                                    "description": body.get("submissionDescription", ""),
                                    "fileName": file_name, "status": "PENDING", "publicScore": "", "privateScore": ""})
        self.limits["numToday"] += 1
        self.limits["numAllowedNow"] = max(0, self.limits["numAllowedNow"] - 1)
        return 200, {"message": f"Successfully submitted to {body['competitionName']}", "ref": ref}

    def rpc_CreateSubmission(self, body, user):
        return self._add_submission(body, "submission.csv")

    def rpc_CreateCodeSubmission(self, body, user):
        return self._add_submission(body, body.get("fileName", ""))

    def rpc_GetSubmissionLimits(self, body, user):
        return 200, {"numToday": self.limits["numToday"], "numAllowedNow": self.limits["numAllowedNow"], "numTotal": 9}

    def rpc_ListSubmissions(self, body, user):
        return 200, {"submissions": self.submissions, "nextPageToken": ""}

    def rpc_GetSubmission(self, body, user):
        for sub in self.submissions:
            if sub["ref"] == body["ref"]:
                return 200, sub
        return 404, {"code": 404, "message": "no such submission"}

    def rpc_ListCompetitions(self, body, user):
        found = [{"ref": f"https://www.kaggle.com/competitions/{slug}", "title": slug, "deadline": c.get("deadline"),
                  "maxDailySubmissions": 5, "userHasEntered": True}
                 for slug, c in self.competitions.items() if body.get("search", "") in slug]
        return 200, {"competitions": found, "nextPageToken": ""}

    def _competition(self, body):
        comp = self.competitions.get(body["competitionName"])
        if comp is None:
            return None, (404, {"code": 404, "message": "Competition not found"})
        if comp.get("forbidden"):
            return None, (403, {"code": 403, "message": "You must accept this competition's rules before downloading"})
        return comp, None

    def rpc_ListDataFiles(self, body, user):
        comp, error = self._competition(body)
        if error:
            return error
        files = [{"name": n, "totalBytes": len(d), "creationDate": "2026-01-01T00:00:00Z"}
                 for n, d in comp["files"].items()]
        return 200, {"files": files, "nextPageToken": ""}

    def rpc_DownloadDataFiles(self, body, user):
        comp, error = self._competition(body)
        if error:
            return error
        key = f"{body['competitionName']}.zip"
        self.files[key] = comp["zip"]
        return 302, {"__location__": f"{self.base}/files/{key}"}

    def rpc_DownloadDataFile(self, body, user):
        comp, error = self._competition(body)
        if error:
            return error
        name = body["fileName"]
        if name not in comp["files"]:
            return 404, {"code": 404, "message": "no such file"}
        key = f"{body['competitionName']}/{name}"
        self.files[key] = comp["files"][name]
        return 302, {"__location__": f"{self.base}/files/{key}"}

    # ---- HTTP plumbing
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _path(self):
                parts = urllib.parse.urlsplit(self.path)
                return parts.path if parts.scheme else self.path.split("?", 1)[0]

            def _send(self, status, body, headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                if not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _user(self):
                auth = self.headers.get("Authorization", "")
                return "tester" if auth.startswith(("Basic ", "Bearer ")) else None

            def do_POST(self):
                raw = self._body()
                parts = self._path().strip("/").split("/")
                parts = parts[2:] if parts[:2] == ["api", "v1"] else parts[1:] if parts[:1] == ["v1"] else parts
                method = parts[-1]
                body = json.loads(raw or b"{}")
                fake.requests.append({"method": method, "path": self._path(), "headers": dict(self.headers),
                                      "body": body})
                if method in fake.hang:
                    time.sleep(30)
                    return
                if self._user() is None:
                    return self._send(401, {"code": 401, "message": "Unauthenticated"})
                if method in fake.fail_next:
                    status, resp, *hdrs = fake.fail_next.pop(method)
                    return self._send(status, resp, hdrs[0] if hdrs else {})
                status, resp, *hdrs = fake.rpc(method, body, "tester")
                if status in (301, 302, 303, 307):
                    return self._send(status, b"", {"Location": resp["__location__"]})
                self._send(status, resp, {"X-Kaggle-ApiVersion": "2.2.5", **(hdrs[0] if hdrs else {})})

            def do_PUT(self):
                data = self._body()
                token = self._path().rsplit("/", 1)[-1]
                fake.requests.append({"method": "PUT", "path": self._path(), "headers": dict(self.headers),
                                      "bytes": len(data)})
                if fake.fail_next_put:
                    status, fake.fail_next_put = fake.fail_next_put, None
                    return self._send(status, {"code": status, "message": "upload failed"})
                content_range = self.headers.get("Content-Range", "")
                if content_range.startswith("bytes */"):
                    if token in fake.blobs:
                        return self._send(200, {})
                    return self._send(308, b"")
                fake.blobs[token] = data
                self._send(200, {})

            def do_GET(self):
                path = self._path()
                fake.requests.append({"method": "GET", "path": path, "headers": dict(self.headers)})
                if "/kernels/logs/stream/" in path:
                    slug = path.split("/kernels/logs/stream/", 1)[1].strip("/")
                    if slug not in fake.kernel_logs:
                        return self._send(404, {"code": 404, "message": "no log"})
                    return self._send(200, fake.log_stream(slug), {"Content-Type": "text/event-stream"})
                key = path.split("/files/", 1)[-1]
                if key not in fake.files:
                    return self._send(404, {"code": 404, "message": "no file"})
                self._send(200, fake.files[key], {"Content-Type": "application/octet-stream"})

        return Handler
