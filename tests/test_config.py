"""Typed configs: YAML + overrides, errors that name the key and the closest valid one."""

from pathlib import Path

import pytest

from agentgym.config import ConfigDeprecation, ConfigError, EvalConfig, config_help, load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_yaml_and_overrides_build_typed_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "env:\n  id: agentgym/KVSum-v0\n  kwargs: {num_steps: 5}\nhorizons: [1, 2]\nsampling:\n  temperature: 0\n"
    )
    cfg = load_config(path, EvalConfig, ["policy.model=tiny-random", "sampling.stop=['</answer>']"])
    assert cfg.env.id == "agentgym/KVSum-v0" and cfg.env.kwargs == {"num_steps": 5}
    assert cfg.horizons == [1, 2] and cfg.sampling.temperature == 0.0 and isinstance(cfg.sampling.temperature, float)
    assert cfg.policy.model == "tiny-random" and cfg.sampling.stop == ["</answer>"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("polcy.model=x", "unknown config key 'polcy'; did you mean 'policy'?"),
        ("policy.modle=x", "unknown config key 'policy.modle'; did you mean 'policy.model'?"),
        ("sampling.temperature=hot", "sampling.temperature must be a number, got 'hot'"),
        ("samples_per_task=2.5", "samples_per_task must be an integer"),
        ("policy.backend=hff", "policy.backend must be one of ['hf', 'openai', 'vllm'], got 'hff'; did you mean 'hf'?"),
        ("horizons=[0]", "horizons must be positive integers"),
        ("rollout.check_again=maybe", "rollout.check_again must be true or false"),
        ("horizons", "must look like key.sub=value"),
    ],
)
def test_bad_values_and_keys_are_named(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, EvalConfig, [override])
    assert message in str(info.value)


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(path, EvalConfig)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", EvalConfig)


def test_every_key_has_a_one_line_help():
    lines = config_help(EvalConfig)
    assert all(line.rstrip().split(": ", 1)[1] for line in lines if line.startswith("  "))
    assert any("policy.model" in line for line in lines)


def test_defaults_do_not_share_mutable_state():
    a, b = EvalConfig(), EvalConfig()
    a.horizons.append(99)
    a.env.kwargs["x"] = 1
    assert b.horizons == [1, 2, 4, 8, 16] and b.env.kwargs == {}


def test_exponent_floats_without_a_dot_are_numbers():
    cfg = load_config(None, EvalConfig, ["sampling.temperature=1e-1"])
    assert cfg.sampling.temperature == pytest.approx(0.1)


def test_an_override_error_names_the_override_not_the_file():
    from agentgym.trainers.config import load_train_config

    with pytest.raises(ConfigError, match=r"^override 'grpo\.eps_hgih=3': unknown config key 'grpo\.eps_hgih'"):
        load_train_config(str(CONFIGS / "quickstart.yaml"), ["steps=2", "grpo.eps_hgih=3"])


def test_a_file_error_still_names_the_file(tmp_path):
    from agentgym.trainers.config import load_train_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: unknown config key 'stepz'"):
        load_train_config(str(bad), ["steps=2"])


def test_train_help_config_shows_the_defaults_training_gives_its_sections():
    from agentgym.trainers.config import TrainConfig

    assert "  env.split (str, default 'train'): split whose tasks are used" in config_help(TrainConfig)
    assert "  env.split (str, default 'test'): split whose tasks are used" in config_help(EvalConfig)


def test_the_flat_context_keys_of_version_0_1_still_work_and_say_their_new_name():
    old = [
        "rollout.context=summarize",
        "rollout.max_summaries=7",
        "rollout.summary_threshold=0.5",
        "rollout.keep_last_k=2",
    ]
    with pytest.warns(ConfigDeprecation) as caught:
        cfg = load_config(None, EvalConfig, old)
    said = " ".join(str(w.message) for w in caught)
    assert "use 'rollout.summarize.max_summaries'" in said and "use 'rollout.summarize.threshold'" in said
    assert "'rollout.keep_last_k.k: N'" in said
    new_keys = ["rollout.summarize.max_summaries=7", "rollout.summarize.threshold=0.5", "rollout.keep_last_k.k=2"]
    new = load_config(None, EvalConfig, ["rollout.context=summarize", *new_keys])
    assert cfg.rollout == new.rollout and cfg.rollout.context_config().max_summaries == 7


def test_grpo_step_weight_of_version_0_1_is_gigpo_and_says_its_new_name():
    from agentgym.trainers.config import load_train_config

    old = ["grpo.step_weight=1.0", "grpo.step_gamma=0.9", "grpo.eps_high=0.3", "grpo.mask_over_turn=false"]
    with pytest.warns(ConfigDeprecation, match=r"'grpo\.step_weight' is deprecated: use 'algo: gigpo"):
        cfg = load_train_config(None, old)
    new = load_train_config(
        None,
        [
            "algo=gigpo",
            "gigpo.step_weight=1.0",
            "gigpo.step_gamma=0.9",
            "gigpo.eps_high=0.3",
            "gigpo.mask_over_turn=false",
        ],
    )
    assert cfg.algo == new.algo == "gigpo" and cfg.gigpo == new.gigpo
    assert cfg.gigpo.eps_high == 0.3 and cfg.gigpo.step_gamma == 0.9 and not cfg.gigpo.mask_over_turn
    with pytest.warns(ConfigDeprecation, match=r"step_weight 0 is GRPO"):
        off = load_train_config(None, ["grpo.step_weight=0", "grpo.eps_high=0.3"])
    assert off.algo == "grpo" and off.grpo.eps_high == 0.3


def test_the_library_core_imports_neither_trainers_nor_envs():
    # The core (agentgym/ but the CLI, the application layer, and the deprecated aliases of
    # moved modules) must not depend on the trainers or the bundled envs.
    import ast

    core = Path(__file__).resolve().parent.parent / "agentgym"
    aliases = {"train_config.py", "curriculum.py"}
    offenders = []
    for path in sorted(core.rglob("*.py")):
        rel = path.relative_to(core)
        if rel.parts[0] in ("cli", "trainers", "envs") or str(rel) in aliases:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{rel}: {n}" for n in names if n.startswith(("agentgym.trainers", "agentgym.envs"))]
    assert not offenders, offenders
