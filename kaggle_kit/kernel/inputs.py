"""Where a kernel finds its inputs: the competition, datasets, Kaggle Models and other kernels' outputs, in today's
/kaggle/input layout and in the legacy one. Standard library only: the bootstrap imports it before installing wheels.

How a setting names an input (one string):
  owner/slug                                 dataset        input/datasets/<owner>/<slug>    (legacy input/<slug>)
  owner/model/framework/variation[/version]  Kaggle Model   input/models/<owner>/<model>/... (legacy input/<model>/...)
  kernel:owner/slug                          kernel output  input/notebooks/<owner>/<slug>   (legacy input/<slug>)
The competition is its bare slug: input/competitions/<slug> (legacy input/<slug>).
Kaggle lower-cases a Model's framework in the mount path (`google/gemma-2/Transformers/gemma-2-9b-it/2` is mounted at
input/models/google/gemma-2/transformers/gemma-2-9b-it/2): the resolver tries that spelling and the one written.
A location inside an input is SOURCE or SOURCE:PATH, e.g. `tester/extra-data:lmsys-33k.csv`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KERNEL_PREFIX = "kernel:"
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHOWN_PER_FOLDER = 8
METADATA_KEYS = {"dataset": "dataset_sources", "model": "model_sources", "kernel": "kernel_sources",
                 "competition": "competition_sources"}


class InputNotFound(SystemExit):
    """Stops the kernel with one line (SystemExit prints its message to stderr, no traceback)."""


def kaggle_root() -> Path:
    return Path(os.environ.get("KAGGLE_KIT_ROOT", "/kaggle"))


@dataclass(frozen=True)
class Source:
    kind: str  # "competition" | "dataset" | "model" | "kernel"
    ref: str  # as written, without the "kernel:" prefix
    owner: str | None
    slug: str  # the dataset, kernel or competition slug; the model slug for a Kaggle Model
    framework: str | None = None
    variation: str | None = None
    version: int | None = None

    @property
    def metadata_key(self) -> str:
        return METADATA_KEYS[self.kind]

    @property
    def label(self) -> str:
        return f"{'Kaggle Model' if self.kind == 'model' else self.kind} {self.ref}"

    def _model_tail(self, framework: str) -> list[str]:
        return [self.slug, framework, self.variation] + ([str(self.version)] if self.version else [])

    def layouts(self, root: Path) -> dict[str, Path]:
        """{"today": path, "legacy": path}: where Kaggle mounts it (a model without version: its variation folder;
        its framework lower-cased, as Kaggle writes it)."""
        inputs = root / "input"
        if self.kind == "model":
            tail = self._model_tail(self.framework.lower())
            return {"today": inputs.joinpath("models", self.owner, *tail), "legacy": inputs.joinpath(*tail)}
        folder = {"competition": "competitions", "dataset": "datasets", "kernel": "notebooks"}[self.kind]
        today = inputs / folder / self.slug if self.owner is None else inputs / folder / self.owner / self.slug
        return {"today": today, "legacy": inputs / self.slug}

    def candidates(self, root: Path) -> list[Path]:
        """Today's layout first, then the legacy one; for a Model each with the framework lower-cased (Kaggle's
        spelling), then as written."""
        found = []
        for name, path in self.layouts(root).items():
            found.append(path)
            if self.kind == "model" and self.framework != self.framework.lower():
                tail = self._model_tail(self.framework)
                inputs = root / "input" / "models" / self.owner if name == "today" else root / "input"
                found.append(inputs.joinpath(*tail))
        return found

    @property
    def metadata_ref(self) -> str:
        """The handle as kernel-metadata.json carries it: a Model's framework lower-cased, as Kaggle writes handles
        (`google/gemma-2/transformers/gemma-2-9b-it/2`), with an integer version (the client checks five parts,
        `validate_model_instance_version_string`)."""
        if self.kind != "model":
            return self.ref
        return "/".join([self.owner, self.slug, self.framework.lower(), self.variation,
                         *([str(self.version)] if self.version else [])])


def parse_source(ref: str) -> Source:
    """A setting's string as a Source; ValueError (one line) for anything else."""
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"input '{ref}' is empty")
    kernel = ref.startswith(KERNEL_PREFIX)
    body = ref[len(KERNEL_PREFIX):] if kernel else ref
    parts = body.split("/")
    if not all(_PART.match(p) for p in parts):
        raise ValueError(f"input '{ref}' has an empty or odd part (letters, digits, '-', '_' and '.' only)")
    if kernel:
        if len(parts) != 2:
            raise ValueError(f"kernel output '{ref}' must be kernel:owner/slug")
        return Source("kernel", body, parts[0], parts[1])
    if len(parts) == 2:
        return Source("dataset", body, parts[0], parts[1])
    if len(parts) in (4, 5):
        version = None
        if len(parts) == 5:
            if not parts[4].isdigit() or int(parts[4]) < 1:
                raise ValueError(f"Kaggle Model '{ref}': the version '{parts[4]}' must be a whole number >= 1")
            version = int(parts[4])
        return Source("model", body, parts[0], parts[1], parts[2], parts[3], version)
    raise ValueError(f"input '{ref}' must be owner/slug (a dataset), owner/model/framework/variation[/version] "
                     "(a Kaggle Model) or kernel:owner/slug (a kernel's output)")


def source_problem(ref: str) -> str | None:
    """None when parse_source accepts `ref`, else why not (for a config check)."""
    try:
        parse_source(ref)
    except ValueError as exc:
        return str(exc)
    return None


def competition_source(slug: str) -> Source:
    return Source("competition", slug, None, slug)


def parse_location(location: str) -> tuple[Source, str]:
    """"SOURCE[:PATH]" -> (Source, PATH or ""); the `kernel:` prefix is not the separator."""
    offset = len(KERNEL_PREFIX) if location.startswith(KERNEL_PREFIX) else 0
    ref, _, path = location[offset:].partition(":")
    return parse_source(location[:offset] + ref), path.strip("/")


def mounted_listing(root: Path | None = None) -> str:
    """What is under <root>/input two levels deep, on one line."""
    inputs = (root or kaggle_root()) / "input"
    if not inputs.is_dir():
        return f"{inputs} does not exist"
    shown = []
    for top in sorted(inputs.iterdir()):
        if not top.is_dir():
            shown.append(top.name)
            continue
        names = sorted(p.name for p in top.iterdir())
        more = f", +{len(names) - _SHOWN_PER_FOLDER} more" if len(names) > _SHOWN_PER_FOLDER else ""
        shown.append(f"{top.name}/{{{', '.join(names[:_SHOWN_PER_FOLDER])}{more}}}")
    return ", ".join(shown) or "nothing"


def _not_found(what: str, looked: Iterable[Path], root: Path) -> InputNotFound:
    where = ", ".join(str(p) for p in looked)
    return InputNotFound(f"kaggle-kit: {what} is not mounted (looked in {where}); {root / 'input'} holds: "
                         f"{mounted_listing(root)}")


def _newest_version(variation: Path) -> Path | None:
    versions = [p for p in variation.iterdir() if p.is_dir() and p.name.isdigit()] if variation.is_dir() else []
    return max(versions, key=lambda p: int(p.name)) if versions else None


def find_source(source: Source | str, root: Path | None = None) -> Path:
    """The folder where `source` is mounted (today's layout first, then legacy); InputNotFound when nowhere."""
    root = root or kaggle_root()
    if isinstance(source, str):
        try:
            source = parse_source(source)
        except ValueError as exc:
            raise InputNotFound(f"kaggle-kit: {exc}") from None
    for candidate in source.candidates(root):
        if source.kind == "model" and source.version is None:
            candidate = _newest_version(candidate)
        if candidate is not None and candidate.is_dir():
            return candidate
    raise _not_found(source.label, source.candidates(root), root)


def find_competition(slug: str, root: Path | None = None) -> Path:
    return find_source(competition_source(slug), root)


def find_input(location: str, root: Path | None = None) -> Path:
    """The file or folder a location names; it must exist."""
    try:
        source, path = parse_location(location)
    except ValueError as exc:
        raise InputNotFound(f"kaggle-kit: {exc}") from None
    folder = find_source(source, root)
    target = folder / path if path else folder
    if not target.exists():
        names = sorted(p.name for p in folder.iterdir())
        raise InputNotFound(f"kaggle-kit: {source.label} has no {path} (it holds: "
                            f"{', '.join(names[:_SHOWN_PER_FOLDER]) or 'nothing'}"
                            f"{', ...' if len(names) > _SHOWN_PER_FOLDER else ''})")
    return target


def metadata_sources(refs: Iterable[str | None]) -> dict[str, list[str]]:
    """kernel-metadata.json's source lists for these settings (order kept, duplicates and None dropped);
    ValueError for a bad ref or a Kaggle Model without version (model_sources need one)."""
    out: dict[str, list[str]] = {"dataset_sources": [], "model_sources": [], "kernel_sources": []}
    for ref in refs:
        if not ref:
            continue
        source = parse_source(ref)
        if source.kind == "model" and source.version is None:
            raise ValueError(f"Kaggle Model '{ref}' has no version: kernel-metadata's model_sources need "
                             f"{ref}/<version> (the model page lists them)")
        if source.metadata_ref not in out[source.metadata_key]:
            out[source.metadata_key].append(source.metadata_ref)
    return out
