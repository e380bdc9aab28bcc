"""The dataset registry: declarations in, graphs out."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from graphrec.registry import Registry
from graphrec.loaders.files import ChecksumError, ensure_files, resolve_data_root, verify_file


@dataclass(frozen=True)
class DatasetSpec:
    """Everything graphrec needs to know about one dataset.

    ``files`` maps file names to accepted digests (``"sha256:..."``/``"md5:..."``).
    ``reader(paths, name)`` receives the resolved paths and returns the in-memory graph.
    The files live in ``<data root>/<name>/``, or in ``<data root>/<subdir>/`` when several
    datasets share one folder (e.g. ``subdir="planetoid/raw"`` for Cora, CiteSeer, PubMed).
    """

    name: str
    task: str
    files: dict[str, tuple[str, ...]]
    reader: Callable[[dict[str, Path], str], Any]
    url_base: str | None = None
    description: str = ""
    citation: str = ""
    stats: dict[str, int] = field(default_factory=dict)
    subdir: str | None = None

    def folder(self, data_dir=None) -> Path:
        return resolve_data_root(data_dir) / (self.subdir or self.name)

    def is_present(self, data_dir=None) -> bool:
        folder = self.folder(data_dir)
        return all((folder / name).is_file() for name in self.files)

    def verify(self, data_dir=None) -> None:
        folder = self.folder(data_dir)
        for name, digests in self.files.items():
            verify_file(folder / name, digests)


_REGISTRY: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return _REGISTRY.add(spec.name, spec)


def available_datasets(task: str | None = None) -> list[str]:
    return _REGISTRY.names(None if task is None else (lambda spec: spec.task == task))


def get_dataset_spec(name: str) -> DatasetSpec:
    return _REGISTRY.get(name)


def load_dataset(name: str, data_dir=None, download: bool = True):
    """Locate (downloading if needed and allowed) and read a registered dataset."""
    spec = get_dataset_spec(name)
    paths = ensure_files(spec.folder(data_dir), spec.files, spec.url_base, download=download)
    for name, path in paths.items():
        if not _matches_checksum(path, spec.files[name]):
            warnings.warn(f"{path} differs from the published checksum of {spec.name}'s {name}: results may not "
                          "compare with published ones. Check with `graphrec datasets --verify`; delete the file "
                          "to download it again", stacklevel=2)
    return spec.reader(paths, spec.name)


#: (path, size, mtime) -> whether the file matched: a file is hashed once per process until it changes
_CHECKED: dict[tuple[str, int, int], bool] = {}


def _matches_checksum(path: Path, digests: tuple[str, ...]) -> bool:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        try:
            verify_file(path, digests)
            _CHECKED[key] = True
        except ChecksumError:
            _CHECKED[key] = False
    return _CHECKED[key]
