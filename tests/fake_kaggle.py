"""A small fake Kaggle server (stdlib only) that the REAL kaggle client talks to through the LOCALHOST env + HTTP proxy.

By default it answers the way Kaggle does, as the client's own source (kaggle 2.2.5 `kaggle/api/kaggle_api_extended.py`,
kagglesdk 0.1.38) and its users show (see shared/docs/kaggle-real-answers.md); each behaviour has a switch so a
focused test can turn it off:

- an unknown kernel's status, output, log stream and GetKernel are 403 (`kernels_status`/`kernels_output` turn a 401/403
  into "Cannot access kernel ... Permission 'kernels.get' was denied"; kaggle-cli PR #951). `unknown_kernel_status`.
- a push is accepted and then answered 5xx or not at all: `accept_then_fail = {method: (nth call, status)}`, status 0
  drops the connection (default: the 2nd SaveKernel and the 2nd CreateSubmission; unsloth `launch.py` "a known issue").
- an unpinned status (no versionLabel) describes the previous version for `stale_polls` polls after a push (kaggle-cli
  PRs #1201, #1177); every pushed version runs for `session_polls` status polls (of any kernel) before COMPLETE.
- the log stream (`kernels_logs_stream`) is SSE while the asked-for version runs, and the first connection of each
  version drops after one event (`drop_streams`; the client's comment on load-balancer drops); once finished it is a
  JSON array with a non-SSE content type (`_iter_blob_lines`). The output listing's `log` is that JSON array as text.
- error bodies: `fail_next[M] = (status, body[, headers])` (or a list of those, one per call) sends `body` as
  JSON; body None sends an HTML page (what a 429/503 from the front end looks like); `error_body(shape, ...)` builds
  the top-level, nested and list shapes.
- ListSubmissions answers pages of 20 (`competition_submissions` L2534); a new submission is absent from
  ListSubmissions/GetSubmission for `hide_new_submission` calls (`_poll_submission`: "transient 404 ... eventual
  consistency"); GetSubmissionLimits is all zeros for a competition whose rules are not accepted (ApiSubmissionLimits:
  "empty/zeros if the user is not on a team yet").
- a GPU push beyond `gpu_session_cap` is a 200 with the cap text, versionNumber 0 and an empty ref.
- GetAcceleratorQuotaStatistics answers `quota` (`quota_view`, kaggle-cli PR #1029).

Kaggle Models (the block "Kaggle Models" below; kaggle 2.2.5 `model_get`, `model_create_new`, `model_instance_get`,
`model_instance_create`, `model_instance_version_create`, `model_instance_update`, `model_instance_version_files`):
- a model that does not exist (or is not yours) is 403 "Permission 'models.get' was denied" in the list shape of
  kaggle-cli #548 (`unknown_model_status`); a variation that does not exist in a model you own is 404.
- a create that fails is a 200 whose body carries `error` (kagglehub `handle_mutate_call`): a model slug taken, an
  owner that is not you, a variation that exists (errorCode 409, kagglehub's `model_upload_stub`), a licence Kaggle
  does not know (the same stub), a version of a variation that does not exist.
- versions are numbered 1, 2, ... per variation; a new version's files are not listed for `model_processing_polls`
  listing calls (its archives are being unpacked, kagglehub #103); folder zips are listed unpacked.

`kernel_status[slug]` (a queue of (status, failureMessage), popped in order, last one kept) overrides the lifecycle
for every version of that kernel; `kernel_outputs[slug]` overrides the per-version outputs; `kernel_logs[slug]` are the
log lines of every version. `fail_next_put`, `hang` (with `hang_s`), `drop_dataset_files`, `shrink_dataset_files`,
`finish_submission(...)`, `start_sessions(n)` as before."""

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
        # Kaggle's ways, each a switch (see the module docstring)
        self.accept_then_fail: dict[str, tuple[int, int]] = {"SaveKernel": (2, 500), "CreateSubmission": (2, 500)}
        self.unknown_kernel_status = 403
        self.stale_polls = 2
        self.drop_streams = True
        self.hide_new_submission = 1
        self.submissions_page = 20
        self.quota = {"used_s": 10 * 3600, "total_s": 30 * 3600, "reserved_s": 0}
        self.hang_s = 30.0
        self._calls: dict[str, int] = {}
        self._stale: dict[str, int] = {}
        self._hidden: dict[int, int] = {}
        self._streams: dict[tuple[str, int], int] = {}
        self.last_status: dict[str, str] = {}
        self.fail_next_put: int | None = None
        self.hang: set[str] = set()
        self.drop_dataset_files: set[str] = set()
        self.shrink_dataset_files: set[str] = set()
        self.list_page_size = 2  # small pages, so callers must follow nextPageToken
        self.gpu_session_cap: int | None = None
        self.models: dict[str, dict] = {}  # "owner/model" -> {"body": CreateModel body, "instances": {key: {...}}}
        self.unknown_model_status = 403
        self.model_processing_polls = 1
        self.session_polls = 3  # RUNNING for several polls
        self.sessions: list[dict] = []  # {"slug", "version", "gpu", "left": polls until COMPLETE}; slug None: elsewhere
        self.kernel_logs: dict[str, list[str]] = {}
        self.most_sessions = 0  # the most GPU sessions that ever ran at once
        self._counter = 0
        self._init_scoring()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    # ---- lifecycle
    def __enter__(self):
        # A short poll interval: shutdown() waits up to one interval, once per test that uses the server.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
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
        """GPU sessions still running: what counts against `gpu_session_cap`."""
        return [s for s in self.sessions if s["left"] > 0 and s.get("gpu", True)]

    def start_sessions(self, count: int, polls: int | None = None) -> None:
        self.sessions += [{"slug": None, "version": 0, "gpu": True, "left": polls or self.session_polls}
                          for _ in range(count)]

    def _unknown_kernel(self):
        return self.unknown_kernel_status, {"code": self.unknown_kernel_status,
                                            "message": "Permission 'kernels.get' was denied"}

    def _known(self, slug: str) -> bool:
        return slug in self.kernels or slug in self.kernel_status

    @staticmethod
    def _version(body) -> int | None:
        label = str(body.get("versionLabel") or "")
        return int(label[1:]) if label[:1] == "v" and label[1:].isdigit() else None

    def rpc_SaveKernel(self, body, user):
        """`kernels_push` sends SaveKernel once (never `with_retry`): every accepted call is a new version."""
        slug = body["slug"]
        gpu = bool(body.get("enableGpu"))
        if self.gpu_session_cap is not None and gpu and len(self.running_sessions()) >= self.gpu_session_cap:
            return 200, {"error": f"Maximum batch GPU session count of {self.gpu_session_cap} reached.",
                         "versionNumber": 0, "ref": "", "url": ""}
        kernel = self.kernels.setdefault(slug, {"versions": 0})
        kernel["versions"] += 1
        kernel["last"] = body
        kernel["model_sources"] = body.get("modelDataSources", [])
        self.sessions.append({"slug": slug, "version": kernel["versions"], "gpu": gpu, "left": self.session_polls})
        self.most_sessions = max(self.most_sessions, len(self.running_sessions()))
        self._stale[slug] = self.stale_polls
        return 200, {"ref": f"/code/{slug}", "url": f"https://www.kaggle.com/code/{slug}",
                     "versionNumber": kernel["versions"], "kernelId": 4242, "error": ""}

    def version_state(self, slug: str, version: int) -> str:
        if slug in self.kernel_status:
            return self.last_status.get(slug, self.kernel_status[slug][0][0])
        own = [s for s in self.sessions if s["slug"] == slug and s["version"] == version]
        return "RUNNING" if own and own[-1]["left"] > 0 else "COMPLETE"

    def rpc_GetKernelSessionStatus(self, body, user):
        slug = f"{body['userName']}/{body['kernelSlug']}"
        for session in self.sessions:
            if session["left"] > 0:
                session["left"] -= 1
        if not self._known(slug):
            return self._unknown_kernel()
        if slug in self.kernel_status:
            queue = self.kernel_status[slug] or [("COMPLETE", "")]
            status, failure = queue.pop(0) if len(queue) > 1 else queue[0]
            self.last_status[slug] = status
            return 200, {"status": status, "failureMessage": failure}
        newest = self.kernels[slug]["versions"]
        version = self._version(body)
        if version is None:  # unpinned: the previous version for a while after a push
            version = newest
            if self._stale.get(slug, 0) > 0:
                self._stale[slug] -= 1
                version = newest - 1
                if version == 0:
                    return self._unknown_kernel()
        if not 1 <= version <= newest:
            return 404, {"code": 404, "message": f"Kernel version v{version} not found"}
        return 200, {"status": self.version_state(slug, version), "failureMessage": ""}

    def rpc_GetKernel(self, body, user):
        slug = f"{body['userName']}/{body['kernelSlug']}"
        if slug not in self.kernels:
            return self._unknown_kernel()
        return 200, {"metadata": {"ref": slug, "slug": slug.split("/")[1], "title": slug.split("/")[1],
                                  "currentVersionNumber": self.kernels[slug]["versions"]}}

    def log_entries(self, slug: str, version: int) -> list[dict]:
        """A line is "text" (stdout) or ("stderr", "text")."""
        entries = []
        for i, line in enumerate(self.kernel_logs.get(slug, [])):
            stream, text = line if isinstance(line, tuple) else ("stdout", line)
            entries.append({"stream_name": stream, "time": float(i), "data": text + "\n"})
        return entries

    def log_stream(self, slug: str, version: int | None):
        """(body, content type, drop): SSE while the version runs (the first connection drops after one event),
        the stored JSON array once it has finished."""
        version = version or self.kernels.get(slug, {}).get("versions", 1)
        entries = self.log_entries(slug, version)
        if self.version_state(slug, version) not in ("RUNNING", "QUEUED"):
            return json.dumps(entries).encode(), "application/json", False
        connection = self._streams[(slug, version)] = self._streams.get((slug, version), 0) + 1
        drop = self.drop_streams and connection == 1 and len(entries) > 1
        events = [f"data: {json.dumps(e)}\n\n" for e in (entries[:1] if drop else entries)]
        return ("".join(events) + ("" if drop else "data: END_OF_LOG\n\n")).encode(), "text/event-stream", drop

    def rpc_ListKernelSessionOutput(self, body, user):
        slug = f"{body['userName']}/{body['kernelSlug']}"
        if not self._known(slug):
            return self._unknown_kernel()
        newest = self.kernels.get(slug, {}).get("versions", 1)
        version = self._version(body) or newest
        outputs = self.kernel_outputs.get(slug, [("run.txt", f"outputs of version {version}\n".encode())])
        files = []
        for name, data in outputs:
            key = f"out-{self.next_id()}"
            self.files[key] = data
            files.append({"fileName": name, "url": f"{self.base}/files/{key}"})
        return 200, {"files": files, "log": json.dumps(self.log_entries(slug, version)), "nextPageToken": ""}

    def rpc_GetAcceleratorQuotaStatistics(self, body, user):
        q = self.quota
        return 200, {"quotaRefreshTime": "2026-12-05T00:00:00Z",
                     "gpuQuota": {"timeUsed": f"{q['used_s']}s", "timeReserved": f"{q['reserved_s']}s",
                                  "totalTimeAllowed": f"{q['total_s']}s"}}

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
        self._hidden[ref] = self.hide_new_submission
        self._queue_score(ref, body)
        self.limits["numToday"] += 1
        self.limits["numAllowedNow"] = max(0, self.limits["numAllowedNow"] - 1)
        return 200, {"message": f"Successfully submitted to {body['competitionName']}", "ref": ref}

    def rpc_CreateSubmission(self, body, user):
        return self._add_submission(body, "submission.csv")

    def rpc_CreateCodeSubmission(self, body, user):
        return self._add_submission(body, body.get("fileName", ""))

    def rpc_GetSubmissionLimits(self, body, user):
        if self.competitions.get(body.get("competitionName"), {}).get("forbidden"):
            return 200, {}  # not on a team yet: every count empty (zero)
        return 200, {"numToday": self.limits["numToday"], "numAllowedNow": self.limits["numAllowedNow"], "numTotal": 9}

    def _visible(self) -> list[dict]:
        """A new submission is missing for a moment (each listing or get counts one moment)."""
        self._score_due()
        shown = [s for s in self.submissions if self._hidden.get(s["ref"], 0) <= 0]
        for ref in list(self._hidden):
            self._hidden[ref] -= 1
        return shown

    def rpc_ListSubmissions(self, body, user):
        visible = self._visible()
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or 20), self.submissions_page)
        more = start + size < len(visible)
        return 200, {"submissions": visible[start:start + size], "nextPageToken": str(start + size) if more else ""}

    def rpc_GetSubmission(self, body, user):
        for sub in self._visible():
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

    # ---- Kaggle Models (kept together: each RPC names the client function it stands in for)
    MODEL_LICENSES = ("Apache 2.0", "MIT", "CC0: Public Domain", "CC BY-SA 4.0", "CC BY-NC-SA 4.0", "GPL 3",
                      "BSD-3-Clause", "Attribution 4.0 International (CC BY 4.0)")  # part of docs/models_metadata.md

    @staticmethod
    def _framework(value) -> str:
        """The client sends the enum's name (EnumSerializer): MODEL_FRAMEWORK_PY_TORCH -> pytorch."""
        return str(value or "").upper().removeprefix("MODEL_FRAMEWORK_").replace("_", "").lower()

    def _instance_key(self, body) -> tuple[str, str, str]:
        return f"{body['ownerSlug']}/{body['modelSlug']}", self._framework(body["framework"]), body["instanceSlug"]

    def model_instance(self, ref: str) -> dict | None:
        """A test's view: owner/model/framework/variation -> {"versions": [...], "card": {...}}."""
        owner, model, framework, variation = ref.split("/")
        return self.models.get(f"{owner}/{model}", {}).get("instances", {}).get((self._framework(framework),
                                                                                   variation))

    def _missing_model(self):
        status = self.unknown_model_status
        return status, {"errors": ["Permission 'models.get' was denied"], "error": {"code": 7, "details": []},
                        "wasSuccessful": False}

    def rpc_GetModel(self, body, user):
        """`model_get`: ApiModel, or 403 for a model that does not exist or is not yours."""
        ref = f"{body['ownerSlug']}/{body['modelSlug']}"
        model = self.models.get(ref)
        if model is None:
            return self._missing_model()
        return 200, {"id": model["id"], "ref": ref, "slug": body["modelSlug"], "title": model["body"]["title"],
                     "isPrivate": model["body"].get("isPrivate", True), "author": body["ownerSlug"],
                     "url": f"https://www.kaggle.com/models/{ref}"}

    def rpc_CreateModel(self, body, user):
        """`model_create_new`: 200 with an `error` when the slug is taken or the owner is not you."""
        ref = f"{body['ownerSlug']}/{body['slug']}"
        if body["ownerSlug"] != user:
            return 200, {"error": f"You do not have permission to create models for '{body['ownerSlug']}'"}
        if ref in self.models:
            return 200, {"error": f"Model slug '{body['slug']}' is already in use"}
        self.models[ref] = {"id": self.next_id(), "body": body, "instances": {}}
        return 200, {"id": self.models[ref]["id"], "ref": ref, "url": f"https://www.kaggle.com/models/{ref}",
                     "error": ""}

    def _instance_answer(self, key, instance):
        ref, framework, variation = key
        return {"id": instance["id"], "slug": variation, "framework": instance["framework"],
                "versionNumber": instance["current"], "licenseName": instance["card"].get("licenseName", ""),
                "overview": instance["card"].get("overview", ""), "usage": instance["card"].get("usage", ""),
                "url": f"https://www.kaggle.com/models/{ref}/{framework}/{variation}"}

    def rpc_GetModelInstance(self, body, user):
        """`model_instance_get`: ApiModelInstance (versionNumber is the current version); 403 when the model is
        missing, 404 when only the variation is."""
        ref, framework, variation = key = self._instance_key(body)
        if ref not in self.models:
            return self._missing_model()
        instance = self.models[ref]["instances"].get((framework, variation))
        if instance is None:
            return 404, {"code": 404, "message": "Model instance not found"}
        return 200, self._instance_answer(key, instance)

    def _new_version(self, instance, files, notes) -> int:
        instance["versions"].append({"files": self._received_files({"files": files}), "notes": notes,
                                     "hidden": self.model_processing_polls})
        instance["current"] = len(instance["versions"])
        return instance["current"]

    def rpc_CreateModelInstance(self, body, user):
        """`model_instance_create` (sent through `with_retry`): 200 with `error` for an existing variation (errorCode
        409) or a licence Kaggle does not know."""
        inner = body["body"]
        ref = f"{body['ownerSlug']}/{body['modelSlug']}"
        if ref not in self.models:
            return self._missing_model()
        key = (self._framework(inner["framework"]), inner["instanceSlug"])
        if key in self.models[ref]["instances"]:
            return 200, {"error": "Model instance already exists", "errorCode": 409}
        if inner.get("licenseName") not in self.MODEL_LICENSES:
            return 200, {"error": f"Invalid license name '{inner.get('licenseName')}'"}
        instance = {"id": self.next_id(), "framework": inner["framework"], "card": dict(inner), "versions": [],
                    "current": 0}
        self.models[ref]["instances"][key] = instance
        self._new_version(instance, inner.get("files", []), "")
        return 200, {"id": instance["id"], "ref": f"{ref}/{key[0]}/{key[1]}",
                     "url": f"https://www.kaggle.com/models/{ref}/{key[0]}/{key[1]}/1", "error": ""}

    def rpc_CreateModelInstanceVersion(self, body, user):
        """`model_instance_version_create`: the next version number; 200 with `error` when the variation is
        missing."""
        ref, framework, variation = self._instance_key(body)
        instance = self.models.get(ref, {}).get("instances", {}).get((framework, variation))
        if instance is None:
            return 200, {"error": f"Model instance {ref}/{framework}/{variation} not found"}
        number = self._new_version(instance, body["body"].get("files", []), body["body"].get("versionNotes", ""))
        return 200, {"id": self.next_id(), "ref": f"{ref}/{framework}/{variation}/{number}",
                     "url": f"https://www.kaggle.com/models/{ref}/{framework}/{variation}/{number}", "error": ""}

    def rpc_UpdateModelInstance(self, body, user):
        """`model_instance_update`: the fields its updateMask names (a FieldMask in JSON: "overview,licenseName")."""
        ref, framework, variation = self._instance_key(body)
        instance = self.models.get(ref, {}).get("instances", {}).get((framework, variation))
        if instance is None:
            return 404, {"code": 404, "message": "Model instance not found"}
        for name in str(body.get("updateMask") or "").split(","):
            if name in ("overview", "usage", "licenseName") and name in body:
                instance["card"][name] = body[name]
        return 200, {"id": instance["id"], "error": ""}

    def rpc_ListModelInstanceVersionFiles(self, body, user):
        """`model_instance_version_files`: a processed version's files (name, size), paged; none while it is
        processed."""
        ref, framework, variation = self._instance_key(body)
        instance = self.models.get(ref, {}).get("instances", {}).get((framework, variation))
        number = int(body.get("versionNumber") or 0)
        if instance is None or not 1 <= number <= len(instance["versions"]):
            return 404, {"code": 404, "message": "Model instance version not found"}
        version = instance["versions"][number - 1]
        if version["hidden"] > 0:
            version["hidden"] -= 1
            return 200, {"files": [], "nextPageToken": ""}
        listed = [{"name": n, "size": b} for n, b in sorted(version["files"].items())]
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or 20), self.list_page_size)
        more = start + size < len(listed)
        return 200, {"files": listed[start:start + size], "nextPageToken": str(start + size) if more else ""}

    # ---- scoring and the leaderboard (runs ledger, `leaderboard`)
    def _init_scoring(self) -> None:
        """`scorer(file bytes) -> public score text`: what Kaggle's scorer does to a file submission, `score_polls`
        reads after it is listed (PENDING until then; None: submissions stay PENDING until `finish_submission`).
        `leaderboard`: [{"teamId", "teamName", "submissionDate", "score"}] best first, the public one;
        `private_leaderboard`: answered instead unless the request sets overridePublic (kaggle-cli #731)."""
        self.scorer = None
        self.score_polls = 1
        self._scoring: dict[int, list] = {}
        self.leaderboard: list[dict] = []
        self.private_leaderboard: list[dict] | None = None
        self.leaderboard_page = 50

    def _queue_score(self, ref: int, body: dict) -> None:
        token = body.get("blobFileTokens")
        if self.scorer is not None and token in self.blobs:
            self._scoring[ref] = [self.blobs[token], self.score_polls]

    def _score_due(self) -> None:
        for ref, pending in list(self._scoring.items()):
            if self._hidden.get(ref, 0) > 0:
                continue
            pending[1] -= 1
            if pending[1] < 0:
                del self._scoring[ref]
                self.finish_submission(ref, "COMPLETE", self.scorer(pending[0]))

    def rpc_GetLeaderboard(self, body, user):
        """kagglesdk `get_leaderboard` (`competition_leaderboard_view`, kaggle_api_extended.py L2852): one page of
        ApiLeaderboardSubmission, best first, with a nextPageToken; scores are strings."""
        board = self.leaderboard if body.get("overridePublic") or self.private_leaderboard is None \
            else self.private_leaderboard
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or 20), self.leaderboard_page)
        more = start + size < len(board)
        return 200, {"submissions": board[start:start + size], "nextPageToken": str(start + size) if more else ""}

    # ---- error bodies as Kaggle sends them
    @staticmethod
    def error_body(shape: str, status: int, message: str) -> dict:
        """top: {"code", "message"} (kagglesdk `_prepare_response`); nested: {"error": {...}} (kaggle-cli #931);
        list: {"errors": [...], "error": {"code": 7}, "wasSuccessful": false} (kaggle-cli #548)."""
        if shape == "nested":
            return {"error": {"code": status, "message": message, "status": "RESOURCE_EXHAUSTED"}}
        if shape == "list":
            return {"errors": [message], "error": {"code": 7}, "wasSuccessful": False}
        return {"code": status, "message": message}

    @staticmethod
    def html_page(status: int) -> bytes:
        return (f"<!DOCTYPE html><html><head><title>Error {status}</title></head><body><h1>{status}</h1>"
                "<p>Please try again later.</p></body></html>").encode()

    def _accepted_then_failed(self, method: str) -> int | None:
        """Counts accepted calls: the nth accepted one of `method` is answered `status` (0: connection dropped)."""
        self._calls[method] = self._calls.get(method, 0) + 1
        nth, status = self.accept_then_fail.get(method, (0, 0))
        return status if self._calls[method] == nth else None

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
                    time.sleep(fake.hang_s)
                    return
                if self._user() is None:
                    return self._send(401, {"code": 401, "message": "Unauthenticated"})
                if method in fake.fail_next:
                    failure = fake.fail_next.pop(method)
                    if isinstance(failure, list):  # one failure per call, in order
                        if failure[1:]:
                            fake.fail_next[method] = failure[1:]
                        failure = failure[0]
                    status, resp, *hdrs = failure
                    if resp is None:
                        return self._send(status, fake.html_page(status), {"Content-Type": "text/html",
                                                                          **(hdrs[0] if hdrs else {})})
                    return self._send(status, resp, hdrs[0] if hdrs else {})
                status, resp, *hdrs = fake.rpc(method, body, "tester")
                accepted = status == 200 and not (isinstance(resp, dict) and resp.get("error"))
                failed_after = fake._accepted_then_failed(method) if accepted else None
                if failed_after is not None:  # accepted, then the answer is lost
                    if failed_after == 0:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    return self._send(failed_after, {"code": failed_after, "message": "Internal error"})
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
                fake.requests.append({"method": "GET", "path": path, "headers": dict(self.headers),
                                      "query": urllib.parse.urlsplit(self.path).query})
                if "/kernels/logs/stream/" in path:
                    slug = path.split("/kernels/logs/stream/", 1)[1].strip("/")
                    query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                    if not fake._known(slug):
                        return self._send(*fake._unknown_kernel())
                    data, kind, drop = fake.log_stream(slug, fake._version(
                        {"versionLabel": (query.get("versionLabel") or [""])[0]}))
                    if not drop:
                        return self._send(200, data, {"Content-Type": kind})
                    self.send_response(200)  # a live stream the load balancer cuts: no length, then closed
                    self.send_header("Content-Type", kind)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                key = path.split("/files/", 1)[-1]
                if key not in fake.files:
                    return self._send(404, {"code": 404, "message": "no file"})
                self._send(200, fake.files[key], {"Content-Type": "application/octet-stream"})

        return Handler
