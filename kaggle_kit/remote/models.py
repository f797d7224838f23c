"""Publish a trained model dir as a Kaggle Model variation through the client's Python API: the model when Kaggle
does not have it, the variation (instance) when it does not, else a new version; then wait until Kaggle lists every
file sent.

Kaggle answers 403 "Permission 'models.get' was denied" for a model that does not exist or is not yours
(kaggle-cli #548; kagglehub `create_model_if_missing` treats 403 and 404 alike), and a create that fails is a 200
whose body carries `error` (kagglehub `handle_mutate_call`; the client's `*_cli` wrappers print it and exit 0)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kaggle_kit.config.kaggle_models import MODEL_LICENSES, ModelHandle, kaggle_license, parse_handle
from kaggle_kit.errors import KitError, RemoteError, UsageProblem
from kaggle_kit.remote.client import OutcomeUnknown, call, get_api, poll, transfer_timeout
from kaggle_kit.remote.datasets import files_differ, manifest, stage_files
from kaggle_kit.remote.model_card import ModelCard, backbone_license, build_card

MISSING = (403, 404)  # what Kaggle answers for a model or variation it does not have (or will not show you)


@dataclass
class PublishSettings:
    """How to publish: licence (Kaggle's name), privacy at creation, notes, and the wait for processing."""

    license: str | None = None
    public: bool = False
    title: str | None = None
    notes: str = ""
    wait: bool = True
    interval: float = 10.0
    timeout: float = 3600.0
    with_checkpoints: bool = False


def check_license(name: str | None, model_dir: Path, info: dict) -> str:
    """Kaggle's spelling of the licence; refused in one line without one, naming the backbone's as a hint."""
    if name:
        found = kaggle_license(name)
        if found is None:
            raise UsageProblem(f"--license '{name}' is not a Kaggle model licence",
                               hint=f"one of: {', '.join(MODEL_LICENSES[:4])}, ... (docs/publishing.md lists all)")
        return found
    declared = backbone_license(Path(str(info.get("backbone") or "")))
    if declared and kaggle_license(declared):
        hint = f"its backbone declares {declared}: e.g. --license '{kaggle_license(declared)}', if its terms allow"
    elif declared:
        hint = f"its backbone declares '{declared}', which is not one of Kaggle's: choose one its terms allow"
    else:
        hint = "choose one the backbone's terms allow, e.g. --license 'Apache 2.0'"
    raise UsageProblem(f"no licence for {model_dir} on Kaggle Models: give --license NAME (or [models] license)",
                       hint=hint)


def _handle(text: str | None) -> ModelHandle:
    if not text:
        raise UsageProblem("no Kaggle Model to publish to",
                           hint="give --kaggle-model owner/model/framework/variation or set [models] handle")
    try:
        return parse_handle(text)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def _write_json(folder: Path, name: str, data: dict) -> None:
    (folder / name).write_text(json.dumps(data, indent=2), encoding="utf-8")


def model_metadata(handle: ModelHandle, card: ModelCard, public: bool) -> dict:
    """model-metadata.json as `model_create_new` reads it."""
    return {"ownerSlug": handle.owner, "slug": handle.model, "title": card.title, "subtitle": card.subtitle,
            "isPrivate": not public, "description": card.description, "publishTime": "", "provenanceSources": ""}


def instance_metadata(handle: ModelHandle, card: ModelCard, license_name: str) -> dict:
    """model-instance-metadata.json as `model_instance_create` reads it (lineage included)."""
    line = card.lineage
    return {"ownerSlug": handle.owner, "modelSlug": handle.model, "instanceSlug": handle.variation,
            "framework": handle.framework, "overview": card.overview, "usage": card.usage,
            "licenseName": license_name, "fineTunable": False, "trainingData": [],
            "modelInstanceType": line.instance_type, "baseModelInstance": line.base_model_instance,
            "externalBaseModelUrl": line.external_url}


def planned_calls(handle: ModelHandle, card: ModelCard, settings: PublishSettings, files: list[dict]) -> list[str]:
    """What a real run sends, in order (a dry run prints these)."""
    size = sum(f["bytes"] for f in files)
    base = f", base model {card.lineage.base_model_instance}" if card.lineage.base_model_instance else ""
    return [
        f"model_get {handle.model_ref}; on 403/404: model_create_new ({'public' if settings.public else 'private'}, "
        f"title '{card.title}')",
        f"model_instance_get {handle.ref}; on 403/404: model_instance_create (licence {settings.license}{base}, "
        f"{len(files)} files, {size:,} bytes); else model_instance_version_create (notes '{_notes(card, settings)}') "
        "and model_instance_update (the card)",
        "wait until Kaggle lists every file of the new version" if settings.wait else "no wait ([models] wait = false)",
    ]


def _notes(card: ModelCard, settings: PublishSettings) -> str:
    return settings.notes or card.version_notes


def _created(response, what: str) -> None:
    """A create answered 200 can still have failed: its body's `error` says why (kagglehub handle_mutate_call)."""
    error = getattr(response, "error", None)
    if error:
        raise RemoteError(f"{what}: Kaggle refused it ({error})",
                          hint="check the handle's owner (your username), its slugs and the licence")


def _exists(what: str, fetch) -> object | None:
    """The object Kaggle returns, or None when it answers 403/404 (missing, or not visible to this account)."""
    try:
        return call(what, fetch)
    except RemoteError as exc:
        if exc.status in MISSING:
            return None
        raise


def _change(what: str, send, timeout: float | None = None):
    """A call that changes Kaggle goes out once; when its outcome is unknown, the rerun asks Kaggle first."""
    try:
        return call(what, send, timeout=timeout, idempotent=False)
    except OutcomeUnknown as exc:
        raise RemoteError(exc.message, hint="rerun the same command: it asks Kaggle what exists before creating "
                          "(a new version may already be there: check the model page)", status=exc.status) from None


def version_files(api, handle: ModelHandle, version: int) -> dict[str, int]:
    """Kaggle's file list of one version: path -> bytes (404/403: none yet)."""
    files: dict[str, int] = {}
    token = None
    while True:
        list_page = functools.partial(api.model_instance_version_files, handle.version(version), page_token=token,
                                      page_size=100)
        with contextlib.redirect_stdout(io.StringIO()):  # the client prints "Next Page Token = ..." to stdout
            page = _exists(f"files of {handle.version(version)}", list_page)
        if page is None:
            return files
        files.update({f.name: int(f.size or 0) for f in page.files or []})
        token = page.next_page_token
        if not token:
            return files


def wait_for_version(api, handle: ModelHandle, version: int, staged: list[dict], interval: float, timeout: float,
                     echo=print, sleep=time.sleep) -> None:
    """Poll until the variation's current version is `version` and it lists every staged file at its size (the
    client exposes no processing state for models; kagglehub #103: the variation shows after its archives are
    unpacked)."""
    seen: dict[str, str | None] = {"detail": "not listed yet"}

    def state() -> str:
        instance = _exists(f"variation {handle.ref}", lambda: api.model_instance_get(handle.ref))
        if instance is None or int(getattr(instance, "version_number", 0) or 0) < version:
            seen["detail"] = f"version {version} not current yet"
            return "PROCESSING"
        remote = version_files(api, handle, version)
        detail = files_differ(staged, remote) if remote else "no files listed yet"
        if detail and remote and all(f["path"] in remote for f in staged):  # every file there, a size differs
            raise RemoteError(f"{handle.version(version)} on Kaggle does not match what was sent: {detail}",
                              hint="upload it again (a new version)")
        seen["detail"] = detail
        return "PROCESSING" if detail else "READY"

    try:
        poll(handle.version(version), state, lambda s: s, ("READY",), interval, timeout, echo, sleep,
             hint=f"see {handle.url}")
    except RemoteError as exc:
        if "still" in exc.message:
            raise RemoteError(f"{exc.message}: {seen['detail']}", hint=exc.hint) from None
        raise


def publish_model(model_dir: Path, handle_text: str | None, settings: PublishSettings, backbone_ref: str | None = None,
                  dry_run: bool = False, echo=print) -> dict:
    """Check everything, stage a clean copy, then create or version on Kaggle Models and wait for processing."""
    from kaggle_kit.model.model_dir import read_model_info

    handle = _handle(handle_text)
    info = read_model_info(model_dir)  # a kaggle-kit model dir, checked before anything else
    settings.license = check_license(settings.license, model_dir, info)
    card = build_card(model_dir, handle, settings.license, backbone_ref, settings.title)
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="kk-dry-run-") as tmp:
            left_out = stage_files("model", model_dir, Path(tmp) / "staging", settings.with_checkpoints)
            files = manifest(Path(tmp) / "staging")
        return {"dry_run": True, **_summary(handle, card, settings, files, left_out),
                "calls": planned_calls(handle, card, settings, files)}
    staging = Path(tempfile.gettempdir()) / "kaggle-kit-staging" / "models" / handle.ref.replace("/", "--")
    left_out = stage_files("model", model_dir, staging, settings.with_checkpoints)
    files = manifest(staging)
    result = _send(get_api(), handle, card, settings, staging, files, echo)
    shutil.rmtree(staging, ignore_errors=True)  # kept only while a failed upload may be resumed
    return {**_summary(handle, card, settings, files, left_out), **result}


def _summary(handle: ModelHandle, card: ModelCard, settings: PublishSettings, files: list[dict],
             left_out: list[str]) -> dict:
    return {"handle": handle.ref, "url": handle.url, "license": settings.license,
            "private_at_creation": not settings.public, "files": files, "left_out": left_out,
            "lineage": {"backbone": card.lineage.backbone, "base_model_instance": card.lineage.base_model_instance,
                        "external_base_model_url": card.lineage.external_url},
            "figures": card.figures, "card": {"description": card.description, "usage": card.usage},
            "version_notes": _notes(card, settings)}


def _send(api, handle: ModelHandle, card: ModelCard, settings: PublishSettings, staging: Path, files: list[dict],
          echo) -> dict:
    timeout = transfer_timeout(sum(f["bytes"] for f in files))
    created: list[str] = []
    model = _exists(f"model {handle.model_ref}", lambda: api.model_get(handle.model_ref))
    if model is None:
        _write_json(staging, "model-metadata.json", model_metadata(handle, card, settings.public))
        _created(_change(f"create model {handle.model_ref}", lambda: api.model_create_new(str(staging))),
                 f"create model {handle.model_ref}")
        created.append("model")
    elif bool(getattr(model, "is_private", True)) == settings.public:
        echo(f"warning: {handle.model_ref} exists and is {'private' if settings.public else 'public'} on Kaggle; "
             "kaggle-kit sets privacy only when it creates a model (change it on the model's settings page)")
    instance = _exists(f"variation {handle.ref}", lambda: api.model_instance_get(handle.ref))
    if instance is None:
        _write_json(staging, "model-instance-metadata.json", instance_metadata(handle, card, settings.license or ""))
        _created(_change(f"create variation {handle.ref}", lambda: api.model_instance_create(
            str(staging), quiet=True, dir_mode="zip"), timeout=timeout), f"create variation {handle.ref}")
        created.append("variation")
        version = 1
    else:
        version = int(getattr(instance, "version_number", 0) or 0) + 1
        _created(_change(f"new version of {handle.ref}", lambda: api.model_instance_version_create(
            handle.ref, str(staging), _notes(card, settings), quiet=True, dir_mode="zip"), timeout=timeout),
            f"new version of {handle.ref}")
        _update_card(api, handle, card, settings.license or "", echo)
    if settings.wait:
        wait_for_version(api, handle, version, files, settings.interval, settings.timeout, echo)
    action = "create" if created else "version"
    return {"action": action, "created": created, "version": version, "mount": handle.version(version),
            "processed": settings.wait}


def _update_card(api, handle: ModelHandle, card: ModelCard, license_name: str, echo) -> None:
    """The variation's card follows its newest version (`model_instance_update`); a failure here only warns: the
    version itself is published."""
    meta = {k: v for k, v in instance_metadata(handle, card, license_name).items()
            if k in ("ownerSlug", "modelSlug", "instanceSlug", "framework", "overview", "usage", "licenseName")}
    with tempfile.TemporaryDirectory(prefix="kk-card-") as folder:
        _write_json(Path(folder), "model-instance-metadata.json", meta)
        try:  # the same fields again: safe to retry
            response = call(f"update the card of {handle.ref}", lambda: api.model_instance_update(folder))
            _created(response, f"update the card of {handle.ref}")
        except KitError as exc:
            echo(f"warning: the new version is up but its card was not updated: {exc.format_line()}")
