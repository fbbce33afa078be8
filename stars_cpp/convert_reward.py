"""Convert a Hugging Face causal reward model (a decoder with a scalar score head) to GGUF.

``LlamaForSequenceClassification``, ``Qwen2ForSequenceClassification`` and
``Qwen3ForSequenceClassification`` checkpoints (e.g. Skywork-Reward-V2) are a causal LM
backbone plus ``score``, a linear map from the last token's final hidden state to
``num_labels`` outputs. llama.cpp has no such model type, so:

1. the backbone is converted by llama.cpp's own ``convert_hf_to_gguf.py`` (of the llama.cpp that
   the installed llama-cpp-python was built from; see :mod:`stars_cpp.llama_cpp_source`), run on
   a temporary copy of the checkout whose ``config.json`` names the matching ``*ForCausalLM``
   and whose safetensors no longer hold ``score.*``;
2. one row of ``score.weight`` is stored as GGUF metadata that llama.cpp ignores
   (``stars.reward.head.weight``, float32[n_embd]; ``stars.reward.head.bias``, float32, only
   when the checkpoint has ``score.bias``; ``stars.reward.head.row``, int32, -1 = the input's
   last token), never as a tensor (llama.cpp refuses files with unexpected tensors);
3. optionally the file is quantized by llama.cpp's quantizer (``llama_model_quantize``), which
   keeps the metadata; the head is read back from the final file and checked.

:class:`stars_cpp.CausalReward` reads such a file: reward = head . h + bias, h the final hidden
state of the last token.

torch, transformers, safetensors and sentencepiece (``pip install 'stars_cpp[convert]'``) are
needed only here and are imported only when a conversion runs.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stars_cpp import llama_cpp_source
from stars_cpp.errors import ConversionError, ModelLoadError, ModelNotFoundError, ParameterError

__all__ = [
    "HEAD_BIAS_KEY",
    "HEAD_ROW_KEY",
    "HEAD_WEIGHT_KEY",
    "OUTTYPES",
    "SUPPORTED_ARCHITECTURES",
    "convert_reward",
    "quantize_types",
    "read_head",
]

HEAD_WEIGHT_KEY = "stars.reward.head.weight"
HEAD_BIAS_KEY = "stars.reward.head.bias"
HEAD_ROW_KEY = "stars.reward.head.row"
LAST_TOKEN_ROW = -1

# The sequence classifier and the causal LM that llama.cpp's converter knows for its backbone.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForSequenceClassification": "LlamaForCausalLM",
    "Qwen2ForSequenceClassification": "Qwen2ForCausalLM",
    "Qwen3ForSequenceClassification": "Qwen3ForCausalLM",
}
# convert_hf_to_gguf.py --outtype values offered for the backbone (before any quantization).
OUTTYPES = ("f32", "f16", "bf16")
CONVERT_INSTALL = "pip install 'stars_cpp[convert]'"
# Modules the conversion needs, in this process or in llama.cpp's converter. The converter needs
# sentencepiece even for BPE tokenizers: it tries SentencePiece first and only a missing
# tokenizer.model, not a missing module, sends it on to BPE.
_CONVERT_MODULES = ("torch", "transformers", "safetensors", "sentencepiece", "yaml", "tqdm")
_SCORE_PREFIX = "score."
_INDEX = "model.safetensors.index.json"
# Weight formats not carried into the backbone copy (only safetensors are converted).
_OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf")
_HEAD_SCRIPT = Path(__file__).with_name("_gguf_head.py")


def quantize_types() -> dict[str, int]:
    """llama.cpp's file types by name (``"Q8_0"``, ``"Q4_K_M"``, ``"F16"``, ...), from
    llama-cpp-python's ``LLAMA_FTYPE_*`` constants."""
    import llama_cpp

    types = {}
    for name in dir(llama_cpp):
        if name.startswith("LLAMA_FTYPE_") and name != "LLAMA_FTYPE_GUESSED":
            short = name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_")
            types[short.removeprefix("ALL_")] = int(getattr(llama_cpp, name))
    return dict(sorted(types.items(), key=lambda item: item[1]))


def _ftype(quantize: str) -> int:
    types = quantize_types()
    if not isinstance(quantize, str) or quantize.upper() not in types:
        raise ParameterError(f"unknown quantize type {quantize!r}; valid types: "
                         f"{', '.join(types)}")
    return types[quantize.upper()]


def _architecture(config: dict, config_path: Path) -> str:
    architectures = config.get("architectures") or []
    found = architectures[0] if isinstance(architectures, list) and architectures else None
    if found not in SUPPORTED_ARCHITECTURES:
        raise ParameterError(
            f"{config_path}: architecture {found!r} is not a supported causal reward model; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
    return found


def _check_dependencies() -> None:
    missing = [m for m in _CONVERT_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        names = ["pyyaml" if m == "yaml" else m for m in missing]
        raise ImportError(f"convert_reward needs {', '.join(names)}: {CONVERT_INSTALL}")


def _weight_files(hf_dir: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The safetensors shards, and the index's weight map when the checkpoint is sharded."""
    index_path = hf_dir / _INDEX
    if index_path.is_file():
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted({hf_dir / name for name in weight_map.values()})
        missing = [str(p) for p in shards if not p.is_file()]
        if missing:
            raise ModelNotFoundError(f"{index_path} names missing shards: {', '.join(missing)}")
        return shards, weight_map
    shards = sorted(hf_dir.glob("*.safetensors"))
    if shards:
        return shards, None
    others = sorted(p.name for p in hf_dir.iterdir() if p.suffix in _OTHER_WEIGHTS)
    hint = (f" (found {', '.join(others)}: re-save it with "
            f"save_pretrained(..., safe_serialization=True))" if others else "")
    raise ModelLoadError(f"{hf_dir} holds no .safetensors weights{hint}")


def _shard_keys(shard: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt") as f:
        return list(f.keys())


def _read_score(shards: Sequence[Path], weight_map: dict[str, str] | None):
    """score.weight as float32 (num_labels, hidden), score.bias or None, and the shards holding
    score.* tensors."""
    import numpy as np
    from safetensors import safe_open

    keys_of = {}
    for shard in shards:
        if weight_map is not None:
            keys_of[shard] = [k for k, v in weight_map.items() if shard.name == v]
        else:
            keys_of[shard] = _shard_keys(shard)
    tensors = {}
    for shard, keys in keys_of.items():
        wanted = [k for k in keys if k.startswith(_SCORE_PREFIX)]
        if wanted:
            with safe_open(str(shard), framework="pt") as f:
                for key in wanted:
                    tensors[key] = f.get_tensor(key).float().numpy()
    if "score.weight" not in tensors:
        raise ModelLoadError(f"the checkpoint has no score.weight (found {len(tensors)} score "
                         f"tensors); is it a *ForSequenceClassification model?")
    weight = np.asarray(tensors["score.weight"], dtype=np.float32)
    if weight.ndim == 1:
        weight = weight[None, :]
    bias = tensors.get("score.bias")
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float32).reshape(-1)
    unknown = sorted(set(tensors) - {"score.weight", "score.bias"})
    if unknown:
        raise ModelLoadError(f"unexpected score head tensors {unknown}: only a linear score head "
                         f"(score.weight, score.bias) is supported")
    holders = [s for s, keys in keys_of.items() if any(k.startswith(_SCORE_PREFIX) for k in keys)]
    return weight, bias, holders


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)


def _prepare_backbone(hf_dir: Path, dst: Path, config: dict, causal: str,
                      shards: Sequence[Path], weight_map: dict[str, str] | None,
                      holders: Sequence[Path]) -> None:
    """A copy of hf_dir that llama.cpp's converter reads as a plain causal LM."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    dst.mkdir()
    skip = {"config.json", _INDEX} | {s.name for s in shards}
    for entry in hf_dir.iterdir():
        if entry.is_file() and entry.name not in skip and entry.suffix not in _OTHER_WEIGHTS:
            shutil.copy2(entry, dst / entry.name)
    for shard in shards:
        if shard not in holders:
            _link_or_copy(shard, dst / shard.name)
            continue
        with safe_open(str(shard), framework="pt") as f:
            metadata = f.metadata() or {"format": "pt"}
            kept = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(_SCORE_PREFIX)}
        if kept:
            save_file(kept, str(dst / shard.name), metadata=metadata)
    if weight_map is not None:
        index = json.loads((hf_dir / _INDEX).read_text(encoding="utf-8"))
        index["weight_map"] = {k: v for k, v in weight_map.items()
                               if not k.startswith(_SCORE_PREFIX) and (dst / v).exists()}
        (dst / _INDEX).write_text(json.dumps(index, indent=2), encoding="utf-8")
    config = dict(config, architectures=[causal])
    (dst / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    return (errors or lines or ["no output"])[-1]


def _run(command: list[str], what: str, verbose: bool, env: dict | None = None) -> str:
    done = subprocess.run(command, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=None if verbose else subprocess.PIPE)
    if done.returncode != 0:
        raise ConversionError(f"{what} failed (exit {done.returncode}): "
                           f"{_tail((done.stderr or '') + (done.stdout or ''))}")
    return done.stdout


def _gguf_env(llama_dir: Path) -> dict:
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    paths = [str(llama_dir / "gguf-py")] + [p for p in [env.get("PYTHONPATH")] if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _run_converter(llama_dir: Path, backbone: Path, out: Path, outtype: str, name: str,
                   verbose: bool) -> None:
    command = [sys.executable, str(llama_dir / llama_cpp_source.CONVERTER), str(backbone),
               "--outtype", outtype, "--outfile", str(out), "--model-name", name]
    if verbose:
        print("stars_cpp: " + " ".join(command), file=sys.stderr)
    _run(command, f"llama.cpp's {llama_cpp_source.CONVERTER}", verbose, _gguf_env(llama_dir))
    if not out.is_file():
        raise ConversionError(f"llama.cpp's {llama_cpp_source.CONVERTER} wrote no {out}")


def _add_head(llama_dir: Path, path_in: Path, path_out: Path, head: dict, verbose: bool) -> None:
    spec = path_out.with_suffix(".head.json")
    spec.write_text(json.dumps(head), encoding="utf-8")
    _run([sys.executable, str(_HEAD_SCRIPT), "add", str(path_in), str(path_out), str(spec)],
         "adding the head metadata", verbose, _gguf_env(llama_dir))


class _GgufInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


_GGUF_UINT32, _GGUF_INT32, _GGUF_FLOAT32, _GGUF_STRING, _GGUF_ARRAY = 4, 5, 6, 8, 9
_GGUF_TYPE_NAMES = ("UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL",
                    "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64")


class _GgufFile:
    """A GGUF's header through ggml's C gguf API (in the libllama that llama_cpp loaded), as
    llama.cpp itself reads it. Much faster than gguf-py's reader on 100k-token vocabularies.
    Every getter checks the value type first: ggml aborts the process on a mismatch."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import llama_cpp as bindings

        lib = bindings._lib
        c_void_p, c_int64 = ctypes.c_void_p, ctypes.c_int64

        def fn(name: str, restype, *argtypes):
            function = lib[name]
            function.restype, function.argtypes = restype, list(argtypes)
            return function

        self._free = fn("gguf_free", None, c_void_p)
        self._find = fn("gguf_find_key", c_int64, c_void_p, ctypes.c_char_p)
        self._kv_type = fn("gguf_get_kv_type", ctypes.c_int, c_void_p, c_int64)
        self._arr_type = fn("gguf_get_arr_type", ctypes.c_int, c_void_p, c_int64)
        self._arr_n = fn("gguf_get_arr_n", ctypes.c_size_t, c_void_p, c_int64)
        self._arr_data = fn("gguf_get_arr_data", c_void_p, c_void_p, c_int64)
        self._getters = {
            _GGUF_UINT32: fn("gguf_get_val_u32", ctypes.c_uint32, c_void_p, c_int64),
            _GGUF_INT32: fn("gguf_get_val_i32", ctypes.c_int32, c_void_p, c_int64),
            _GGUF_FLOAT32: fn("gguf_get_val_f32", ctypes.c_float, c_void_p, c_int64),
            _GGUF_STRING: fn("gguf_get_val_str", ctypes.c_char_p, c_void_p, c_int64),
        }
        n_tensors = fn("gguf_get_n_tensors", c_int64, c_void_p)
        init = fn("gguf_init_from_file", c_void_p, ctypes.c_char_p, _GgufInitParams)
        self._ctx = init(os.fsencode(path), _GgufInitParams(True, None))
        if not self._ctx:
            raise ModelLoadError(f"{path} is not a readable GGUF file")
        self.n_tensors = int(n_tensors(self._ctx))

    def close(self) -> None:
        if self._ctx:
            self._free(self._ctx)
            self._ctx = None

    def __enter__(self) -> _GgufFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def type_name(self, key: str) -> str | None:
        key_id = self._find(self._ctx, key.encode())
        if key_id < 0:
            return None
        kv_type = self._kv_type(self._ctx, key_id)
        if kv_type == _GGUF_ARRAY:
            return f"ARRAY[{_GGUF_TYPE_NAMES[self._arr_type(self._ctx, key_id)]}]"
        return _GGUF_TYPE_NAMES[kv_type]

    def get(self, key: str):
        """A scalar (u32, i32, f32, str) or a float32 array as a list; None when absent or of
        another type."""
        key_id = self._find(self._ctx, key.encode())
        if key_id < 0:
            return None
        kv_type = self._kv_type(self._ctx, key_id)
        if kv_type in self._getters:
            value = self._getters[kv_type](self._ctx, key_id)
            return value.decode("utf-8") if isinstance(value, bytes) else value
        if kv_type == _GGUF_ARRAY and self._arr_type(self._ctx, key_id) == _GGUF_FLOAT32:
            n = self._arr_n(self._ctx, key_id)
            data = ctypes.cast(self._arr_data(self._ctx, key_id),
                               ctypes.POINTER(ctypes.c_float * n))
            return list(data.contents) if n else []
        return None


def read_head(path: str | os.PathLike[str]) -> dict:
    """The reward head stored in a GGUF, as llama.cpp's gguf reader sees it.

    Returns ``{"weight": list of floats or None, "bias": float or None, "row": int or None,
    "weight_type": e.g. "ARRAY[FLOAT32]", "architecture", "n_embd", "file_type",
    "n_tensors"}``. Reads the header only.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF {str(path)!r} not found")
    with _GgufFile(path) as gguf_file:
        arch = gguf_file.get("general.architecture")
        return {
            "weight": gguf_file.get(HEAD_WEIGHT_KEY),
            "bias": gguf_file.get(HEAD_BIAS_KEY),
            "row": gguf_file.get(HEAD_ROW_KEY),
            "weight_type": gguf_file.type_name(HEAD_WEIGHT_KEY),
            "architecture": arch,
            "n_embd": gguf_file.get(f"{arch}.embedding_length") if arch else None,
            "file_type": gguf_file.get("general.file_type"),
            "n_tensors": gguf_file.n_tensors,
        }


def _quantize(path_in: Path, path_out: Path, ftype: int, verbose: bool) -> None:
    import logging

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 0
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.ERROR)
    try:
        rc = llama_cpp.llama_model_quantize(str(path_in).encode(), str(path_out).encode(),
                                            ctypes.byref(params))
    finally:
        logger.setLevel(level)
    if rc != 0 or not path_out.is_file():
        raise ConversionError(f"llama.cpp's quantizer failed (return code {rc}) on {path_in.name}; "
                           f"very low-bit types (IQ1/IQ2) need an importance matrix")


def convert_reward(
    hf_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    label: int | None = None,
    outtype: str = "f32",
    llama_cpp_dir: str | os.PathLike[str] | None = None,
    verbose: bool = False,
) -> Path:
    """Convert a Hugging Face causal reward model directory to a GGUF for ``CausalReward``.

    Args:
        hf_dir: a ``LlamaForSequenceClassification``, ``Qwen2ForSequenceClassification`` or
            ``Qwen3ForSequenceClassification`` checkpoint (``config.json``, safetensors weights,
            tokenizer files).
        out_path: the GGUF to write (replaced atomically; its folder is created if needed).
        quantize: a llama.cpp file type such as ``"Q8_0"`` or ``"Q4_K_M"``
            (:func:`quantize_types`), applied after conversion; None keeps ``outtype``.
        label: which output of a head with ``num_labels > 1`` is the reward (required there).
        outtype: the backbone's converted type before quantization: ``"f32"`` (exact),
            ``"f16"`` or ``"bf16"`` (half the size and the temporary disk space).
        llama_cpp_dir: a llama.cpp source tree with ``convert_hf_to_gguf.py``; default: found
            by :func:`stars_cpp.llama_cpp_source.converter_dir`.
        verbose: show the converter's and quantizer's logs.

    Returns:
        ``out_path`` as a Path.

    Raises:
        ModelNotFoundError: ``hf_dir``, its ``config.json`` or a shard does not exist (also a
            ``FileNotFoundError``).
        ParameterError: a missing or out-of-range ``label``, an unknown ``quantize`` or
            ``outtype`` (also a ``ValueError``).
        ModelLoadError: an unsupported architecture or score head, or weights that are not
            safetensors (also a ``ValueError``).
        ImportError: the ``convert`` extra is not installed.
        ConversionError: llama.cpp's converter or quantizer failed (also a ``RuntimeError``).
    """
    import numpy as np

    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if not hf_dir.is_dir():
        raise ModelNotFoundError(f"model directory {str(hf_dir)!r} not found")
    config_path = hf_dir / "config.json"
    if not config_path.is_file():
        raise ModelNotFoundError(f"{config_path} not found: not a Hugging Face model directory")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{config_path} is not valid JSON: {error}") from None
    architecture = _architecture(config, config_path)
    ftype = None if quantize is None else _ftype(quantize)
    if outtype not in OUTTYPES:
        raise ParameterError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise ParameterError(f"label must be an int or None, got {label!r}")
    if out_path.is_dir():
        raise ParameterError(f"out_path {str(out_path)!r} is a directory")
    _check_dependencies()

    shards, weight_map = _weight_files(hf_dir)
    weight, bias, holders = _read_score(shards, weight_map)
    num_labels, hidden = weight.shape
    if label is None:
        if num_labels != 1:
            raise ParameterError(f"the score head has {num_labels} labels "
                             f"({_label_names(config, num_labels)}); pass label=0..{num_labels - 1}"
                             f" (--label N) to pick the reward")
        label = 0
    if not 0 <= label < num_labels:
        raise ParameterError(f"label {label} is out of range: the score head has {num_labels} "
                         f"label{'s' if num_labels != 1 else ''} (0..{num_labels - 1})")
    expected_hidden = config.get("hidden_size")
    if expected_hidden is not None and hidden != int(expected_hidden):
        raise ModelLoadError(
            f"score.weight has {hidden} columns but hidden_size is {expected_hidden}")
    head = {
        "weight": [float(v) for v in weight[label]],
        "bias": None if bias is None else float(bias[label]),
        "row": LAST_TOKEN_ROW,
    }

    llama_dir = llama_cpp_source.converter_dir(llama_cpp_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stars_cpp_convert_", dir=out_path.parent) as tmp:
        tmp = Path(tmp)
        backbone = tmp / hf_dir.resolve().name
        _prepare_backbone(hf_dir, backbone, config, SUPPORTED_ARCHITECTURES[architecture],
                          shards, weight_map, holders)
        converted = tmp / "backbone.gguf"
        _run_converter(llama_dir, backbone, converted, outtype, hf_dir.resolve().name, verbose)
        shutil.rmtree(backbone)
        final = tmp / "reward.gguf"
        _add_head(llama_dir, converted, final, head, verbose)
        converted.unlink()
        if ftype is not None:
            quantized = tmp / "reward-quantized.gguf"
            _quantize(final, quantized, ftype, verbose)
            final.unlink()
            final = quantized
        stored = read_head(final)
        _check_stored(stored, head, np)
        os.replace(final, out_path)
    return out_path


def _label_names(config: dict, num_labels: int) -> str:
    id2label = config.get("id2label") or {}
    names = [str(id2label.get(str(i), id2label.get(i, i))) for i in range(num_labels)]
    return ", ".join(f"{i}={name}" for i, name in enumerate(names))


def _check_stored(stored: dict, head: dict, np) -> None:
    weight = stored.get("weight")
    if weight is None or not np.array_equal(np.asarray(weight, np.float32),
                                            np.asarray(head["weight"], np.float32)):
        raise ConversionError(f"the converted GGUF does not carry the head {HEAD_WEIGHT_KEY} as "
                           f"written")
    if stored.get("n_embd") != len(head["weight"]):
        raise ConversionError(f"the head has {len(head['weight'])} values but the GGUF's embedding "
                           f"length is {stored.get('n_embd')}")
    if stored.get("row") != head["row"] or (stored.get("bias") is None) != (head["bias"] is None):
        raise ConversionError(
            "the converted GGUF does not carry the head's row and bias as written")
