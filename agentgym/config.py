"""Typed configs from YAML, with `key.sub=value` overrides and errors that name the key.

Configs are dataclasses whose fields carry a one-line help (`help_field`). Loading checks
every key and type: an unknown key is an error naming it and the closest valid key.

Example:
    >>> cfg = load_config("configs/quickstart_eval.yaml", EvalConfig, ["policy.model=tiny-random", "horizons=[1,2]"])
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from agentgym.errors import UserError

__all__ = [
    "ConfigDeprecation",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "PluginSections",
    "PolicyConfig",
    "RolloutConfig",
    "SamplingConfig",
    "config_help",
    "from_dict",
    "help_field",
    "load_config",
    "plugin_sections",
    "to_dict",
]

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config value or key that is wrong; the message names the key."""


def help_field(default: Any = MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with a one-line help (mutable defaults are copied per instance)."""
    if "default_factory" in kwargs:
        return field(metadata={"help": help}, **kwargs)
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


def plugin_sections(registry: Callable[[], dict[str, type]], help: str) -> Any:
    """A field that holds the typed sections of plug-ins (context strategies, algorithms).

    `registry()` gives the config class of each registered plug-in by name; in the parent
    section, a key named after a plug-in is a section of that class (`rollout.summarize:
    {threshold: 0.9}`). The parent subclasses `PluginSections`, so `cfg.summarize` reads a
    section (its defaults when the config has none). `help` may say `{name}`."""
    return field(default_factory=dict, metadata={"help": help, "sections": registry})


def _section_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in fields(cls) if "sections" in f.metadata]


class PluginSections:
    """Mixin of a config dataclass with `plugin_sections` fields: `cfg.<name>` is the
    section of the plug-in `<name>`, created with its defaults on first read."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        for f in _section_fields(type(self)):
            classes = f.metadata["sections"]()
            if name in classes:
                store = self.__dict__.setdefault(f.name, {})
                if name not in store:
                    store[name] = classes[name]()
                return store[name]
        raise AttributeError(f"{type(self).__name__} has no key or plug-in section {name!r}")


class ConfigDeprecation(FutureWarning):
    """A config key that still works under an old name (the CLI prints it as one line)."""


def deprecated_key(old: str, new: str) -> None:
    """Say once that config key `old` is now `new` (the old one keeps working)."""
    warnings.warn(f"config key {old!r} is deprecated: use {new!r}", ConfigDeprecation, stacklevel=4)


def move_key(data: dict[str, Any], old: str, section: str, key: str, prefix: str) -> None:
    """Move `data[old]` (a deprecated key) into the section: `data[section][key]`, saying
    so. A section that is not a mapping is left for `from_dict` to refuse."""
    if old not in data:
        return
    deprecated_key(f"{prefix}{old}", f"{prefix}{section}.{key}")
    value = data.pop(old)
    target = data.get(section) or {}
    if isinstance(target, dict):
        data[section] = {key: value, **target}


# ---------------------------------------------------------------------- sections


@dataclass
class PolicyConfig:
    backend: Literal["hf", "openai", "vllm"] = help_field(
        "hf", "hf (transformers), openai (any OpenAI-compatible server) or vllm"
    )
    model: str = help_field(
        "smollm2-135m", "smollm2-135m (embedded), a Hugging Face id, a local folder, or tiny-random"
    )
    dtype: str = help_field("auto", "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16")
    device: str | None = help_field(None, "cpu, cuda, cuda:1, ...; default: cuda if available")
    rollout_dtype: Literal["auto", "float32", "bfloat16", "float16"] = help_field(
        "auto",
        "training (hf): the weights rollouts generate with: auto = a bf16 copy synced after each update on a "
        "GPU, the trained weights themselves on the CPU; or a copy in this dtype",
    )
    batch_size: int = help_field(16, "most prompts per generation batch (hf)")
    gpu_memory_utilization: float = help_field(
        0.3, "vllm backend: share of GPU memory for the engine (training shares the GPU)"
    )
    base_url: str | None = help_field(None, "server URL for the openai backend, e.g. http://127.0.0.1:8000/v1")
    api: Literal["completions", "chat"] = help_field(
        "completions", "openai backend: completions (token ids in) or chat (messages in)"
    )
    prompt: Literal["auto", "token_ids", "text"] = help_field(
        "auto",
        "openai completions: token_ids (exact), text (for servers that take only text: replies re-tokenised, "
        "trajectories marked), or auto (token ids until the server refuses them)",
    )
    tokenizer: str | None = help_field(
        None,
        "openai backend: the tokenizer (name or folder) that renders prompts; default: policy.model's. "
        "Set it when the served model's name is not a loadable tokenizer",
    )


@dataclass
class SamplingConfig:
    max_new_tokens: int = help_field(128, "most tokens per turn (the per-turn token budget)")
    temperature: float = help_field(1.0, "sampling temperature; 0 = greedy")
    top_p: float = help_field(1.0, "nucleus sampling threshold (1 = off; training needs 1)")
    top_k: int = help_field(0, "sample from the k most likely tokens (0 = off; training needs 0)")
    stop: list[str] = help_field([], "strings that end a turn (kept in the reply)")

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0.0 < self.top_p <= 1.0 or self.top_k < 0:
            raise ConfigError(
                f"sampling needs temperature >= 0, 0 < top_p <= 1 and top_k >= 0; got temperature="
                f"{self.temperature}, top_p={self.top_p}, top_k={self.top_k}"
            )


@dataclass
class EnvConfig:
    id: str = help_field("agentgym/GuessNumber-16-v0", "registered env id (see `agentgym envs`)")
    kwargs: dict[str, Any] = help_field({}, "constructor arguments of the env")
    split: str = help_field("test", "split whose tasks are used")
    num_tasks: int | None = help_field(None, "use the first N tasks of the split (default: all)")


def _context_configs() -> dict[str, type]:
    from agentgym.rollout.context import context_configs

    return context_configs()


@dataclass
class RolloutConfig(PluginSections):
    max_concurrent: int = help_field(64, "most episodes in flight at once")
    max_context_tokens: int = help_field(4096, "context window; an episode that cannot fit its next turn ends overlong")
    announce_budget: bool = help_field(False, "tell the agent its turn budget in the system prompt")
    check_again: bool = help_field(False, "TTI's check-again: ask the agent once to verify before accepting an answer")
    budget_tracker: bool = help_field(
        False, "BATS: append a <budget> line (turns and tool calls used/left) to observations"
    )
    tools_in_template: bool | None = help_field(None, "pass tools to the chat template (default: if it supports them)")
    backend: Literal["local", "ray"] = help_field("local", "where envs run: local (this process) or ray (actors)")
    num_workers: int | None = help_field(
        None,
        "ray: env worker actors, each hosting several envs (default: cores); local: env threads (default 1; "
        "a hung step aborts the episodes of its thread)",
    )
    address: str | None = help_field(None, "ray: address of an existing cluster (default: start a local Ray)")
    step_timeout_s: float | None = help_field(
        300.0, "an env reset or step taking longer aborts its episode, not the run (null: no limit)"
    )
    context: str = help_field(
        "full",
        "context strategy (a registered name): full, keep_last_k (older observations -> placeholder), summarize "
        "(SUPO), or a plug-in's; its parameters are the section rollout.<name>",
    )
    max_total_tokens: int | None = help_field(None, "most tokens generated in an episode; past it: overlong")
    context_sections: dict[str, Any] = plugin_sections(
        _context_configs, "parameters of the context strategy {name} (rollout.context={name})"
    )

    @classmethod
    def upgrade_keys(cls, data: dict[str, Any], prefix: str) -> dict[str, Any]:
        """The keys of agentgym 0.1, before strategies had sections of their own."""
        if "keep_last_k" in data and not isinstance(data["keep_last_k"], dict):
            deprecated_key(f"{prefix}keep_last_k: N", f"{prefix}keep_last_k.k: N")
            data["keep_last_k"] = {"k": data["keep_last_k"]}
        for old, new in (("summary_threshold", "threshold"), ("max_summaries", None), ("train_on_summaries", None)):
            move_key(data, old, "summarize", new or old, prefix)
        return data

    def context_config(self) -> Any:
        """The section of the chosen strategy (None when it has no parameters)."""
        return getattr(self, self.context) if self.context in _context_configs() else None

    def __post_init__(self) -> None:
        from agentgym.rollout.context import CONTEXTS

        self.context_sections = dict(self.context_sections)
        if self.context not in CONTEXTS:
            raise ConfigError(f"rollout.context must be one of {CONTEXTS.names()}: {CONTEXTS.unknown(self.context)}")
        self.context_config()  # recorded with the run's config, defaults included
        if self.num_workers is not None and self.num_workers < 1:
            raise ConfigError(f"rollout.num_workers must be >= 1, got {self.num_workers}")
        if self.step_timeout_s is not None and self.step_timeout_s <= 0:
            raise ConfigError(
                f"rollout.step_timeout_s must be > 0 seconds, or null for no limit; got {self.step_timeout_s}"
            )


@dataclass
class EvalConfig:
    env: EnvConfig = help_field(None, "the environment", default_factory=EnvConfig)
    policy: PolicyConfig = help_field(None, "the policy", default_factory=PolicyConfig)
    sampling: SamplingConfig = help_field(None, "per-turn sampling", default_factory=SamplingConfig)
    rollout: RolloutConfig = help_field(None, "rollout settings", default_factory=RolloutConfig)
    horizons: list[int] = help_field([1, 2, 4, 8, 16], "turn budgets to evaluate at")
    samples_per_task: int = help_field(4, "k: episodes per task and horizon (pass@k needs k >= 2)")
    sweep: Literal["auto", "prefix", "rerun"] = help_field(
        "auto",
        "prefix: one run at the largest horizon, success@h = solved within h turns (only when the agent cannot "
        "see its budget); rerun: one run per horizon; auto: prefix unless an option shows the agent its budget "
        "(rollout.announce_budget, rollout.budget_tracker)",
    )
    seed: int = help_field(0, "seed of sampling and of env resets")
    output_dir: str = help_field("runs/eval", "where results.json/csv, the plot and trajectories go")
    save_trajectories: bool = help_field(True, "write trajectories.jsonl")
    training_horizon: int | None = help_field(None, "marked on the plot: the horizon the policy was trained at")
    bootstrap: int = help_field(1000, "bootstrap resamples for the 95% bands")
    fit: bool = help_field(
        False,
        "fit success vs h with A / (1 + exp(-k (ln h - m))) (agentgym.eval.fits): asymptote, slope, midpoint and h50 "
        "with 95% intervals, into results.json and the plot; needs >= 3 horizons",
    )
    label: str | None = help_field(None, "curve label in plots (default: the model name)")
    progress: bool = help_field(True, "show a progress bar")

    def __post_init__(self) -> None:
        if not self.horizons or any(h < 1 for h in self.horizons):
            raise ConfigError(f"horizons must be positive integers, got {self.horizons}")
        if self.samples_per_task < 1:
            raise ConfigError(f"samples_per_task must be >= 1, got {self.samples_per_task}")
        if self.fit and len(set(self.horizons)) < 3:
            raise ConfigError(
                f"fit=true fits a curve of 3 parameters, which needs at least 3 horizons, got horizons={self.horizons}: "
                "add horizons or set fit=false"
            )
        if self.policy.backend == "openai" and self.policy.api == "chat" and self.sampling.top_k > 0:
            raise ConfigError(
                "sampling.top_k: the chat API has no top_k; use policy.api=completions (a vLLM-compatible server) "
                "or sampling.top_k=0"
            )
        from agentgym.rollout.budget import budget_revealing_options

        shown = [f"rollout.{k}" for k in budget_revealing_options(self.rollout)]
        if self.sweep == "prefix" and shown:
            raise ConfigError(
                f"sweep=prefix derives success@h from one run at the largest horizon, which is wrong when the agent "
                f"sees its budget ({', '.join(shown)}): use sweep=auto or sweep=rerun"
            )


# ---------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{key} must be one of {list(args)}, got {value!r}{hint}")
        return value
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of its fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is list or tp is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-6 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a mapping, checking every key and type. Keys named
    after a plug-in are that plug-in's section (`plugin_sections`); a class's
    `upgrade_keys(data, prefix)` first rewrites deprecated keys."""
    if hasattr(cls, "upgrade_keys"):
        data = cls.upgrade_keys(dict(data), prefix)
    hints = typing.get_type_hints(cls)
    sections = {f.name: f.metadata["sections"]() for f in _section_fields(cls)}
    names = [f.name for f in fields(cls) if f.name not in sections]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        owner = next((name for name, classes in sections.items() if key in classes), None)
        if owner is not None:
            kwargs.setdefault(owner, {})[key] = _coerce(value, sections[owner][key], f"{prefix}{key}")
            continue
        if key not in hints or key not in names:
            names = [*names, *(n for classes in sections.values() for n in classes)]
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {prefix + close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {prefix + str(key)!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from exc


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` strings; values are parsed as YAML (`3`, `true`, `[1, 2]`, `null`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        _set_path(data, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return data


def load_config(path: str | Path | None, cls: type[T], overrides: list[str] | None = None) -> T:
    """Read a YAML config (or start from defaults when `path` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys")
    file_data = copy.deepcopy(data)
    apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(_where(exc, path, file_data, cls, overrides or [])) from None


def _where(exc: ConfigError, path: Path | None, file_data: dict[str, Any], cls: type, overrides: list[str]) -> str:
    """The error's message, attributed to what caused it: the file when the file alone is
    wrong in the same way, else the override(s) (the file alone is valid)."""
    if not overrides:
        return f"{path}: {exc}" if path else str(exc)
    try:
        from_dict(cls, file_data)
    except ConfigError as alone:
        if path and str(alone) == str(exc):
            return f"{path}: {exc}"
    else:
        named = [o for o in overrides if o.partition("=")[0].strip() in str(exc)]
        return f"override {' '.join(named or overrides)!r}: {exc}"
    return f"{path}: {exc}" if path else str(exc)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data, plug-in sections under their names (what `from_dict` reads)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if "sections" in f.metadata:
            out.update({name: to_dict(section) for name, section in value.items()})
        elif is_dataclass(value):
            out[f.name] = to_dict(value)
        else:
            out[f.name] = copy.deepcopy(value)
    return out


def config_help(cls: type, prefix: str = "", defaults: Any = None) -> list[str]:
    """One line per key: `key (type, default): help`. A section's defaults are those its
    parent gives it (TrainConfig's env defaults to split "train", EvalConfig's to "test")."""
    lines = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if "sections" in f.metadata:
            for name, section in f.metadata["sections"]().items():
                lines.append(f"{prefix}{name}: {f.metadata['help'].format(name=name)}")
                given = getattr(defaults, name) if defaults is not None else None
                lines.extend(config_help(section, prefix=f"{prefix}{name}.", defaults=given))
            continue
        if defaults is not None:
            default = getattr(defaults, f.name)
        elif f.default is not MISSING:
            default = f.default
        else:
            default = f.default_factory() if f.default_factory is not MISSING else "required"
        if is_dataclass(tp):
            lines.append(f"{prefix}{f.name}: {f.metadata.get('help', '')}")
            lines.extend(config_help(tp, prefix=f"{prefix}{f.name}.", defaults=default))
            continue
        lines.append(f"  {prefix}{f.name} ({_type_name(tp)}, default {default!r}): {f.metadata.get('help', '')}")
    return lines
