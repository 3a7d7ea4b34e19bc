"""Registration: the agentgym/ namespace, listing, and third-party plugins via entry points."""

import subprocess
import sys
import textwrap

import gymnasium
import pytest

import agentgym
from agentgym.registration import full_id


def test_builtin_envs_are_registered_on_import():
    ids = {e.id for e in agentgym.list_envs()}
    assert {"agentgym/GuessNumber-v0", "agentgym/KVSum-v0", "agentgym/KVSum-Lookup-v0"} <= ids


def test_make_accepts_short_and_full_ids():
    assert type(agentgym.make("KVSum-v0").unwrapped) is type(gymnasium.make("agentgym/KVSum-v0").unwrapped)


def test_registered_kwargs_are_defaults_that_make_overrides():
    assert gymnasium.make("agentgym/GuessNumber-16-v0").unwrapped.n == 16
    assert gymnasium.make("agentgym/GuessNumber-16-v0", n=32).unwrapped.n == 32


def test_list_envs_gives_one_line_descriptions():
    for entry in agentgym.list_envs():
        assert entry.description and "\n" not in entry.description


def test_ids_outside_the_namespace_are_refused():
    with pytest.raises(ValueError, match="namespace"):
        agentgym.register("other/Thing-v0", "x:y")
    assert full_id("Thing-v0") == "agentgym/Thing-v0"


PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "agentgym-echo-plugin"
version = "0.0.1"

[project.entry-points."agentgym.envs"]
echo = "echo_env:register_envs"
"""

PLUGIN_MODULE = '''
from agentgym import Outcome, Task, TextEnv, register


class EchoEnv(TextEnv):
    """Repeat the word you are shown."""

    def make_tasks(self, split):
        return [Task(f"{split}-{w}", f"Say {w}", split, metadata={"w": w}) for w in ("red", "blue")]

    def setup(self, task):
        self.word = task.metadata["w"]
        return task.instruction

    def transition(self, action):
        ok = action.strip() == self.word
        return Outcome("yes" if ok else "no", float(ok), terminated=ok, success=ok)


def register_envs():
    register("Echo-v0", "echo_env:EchoEnv")
'''

CHECK = """
import gymnasium, agentgym
env = gymnasium.make("agentgym/Echo-v0")
obs, info = env.reset(options={"task_id": "test-red"})
obs, reward, terminated, truncated, info = env.step("red")
print(obs, reward, terminated, info["success"])
print([e.id for e in agentgym.list_envs() if "Echo" in e.id])
"""


def test_third_party_package_registers_through_the_entry_point(tmp_path):
    src = tmp_path / "plugin"
    src.mkdir()
    (src / "pyproject.toml").write_text(textwrap.dedent(PLUGIN_PYPROJECT))
    (src / "echo_env.py").write_text(PLUGIN_MODULE)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.splitlines() == ["yes 1.0 True True", "['agentgym/Echo-v0']"]


def test_a_broken_plugin_warns_and_the_others_still_load(tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[agentgym.envs]\nbroken = not_a_module_anywhere:register\n")
    code = "import agentgym; print(sorted(e.id for e in agentgym.list_envs())[:1]); print(agentgym.registration.plugin_errors)"
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "agentgym/" in out.stdout.splitlines()[0]
    assert "not_a_module_anywhere" in out.stdout.splitlines()[1]
    assert "could not load environments from plugin 'broken'" in out.stderr


def test_registering_another_env_under_an_existing_id_is_an_error_unless_asked_for():
    spec = gymnasium.spec("agentgym/GuessNumber-v0")
    with pytest.raises(ValueError, match=r"agentgym/GuessNumber-v0 is already registered.*override=True"):
        agentgym.register("GuessNumber-v0", "my_plugin.env:Impostor")
    assert gymnasium.spec("agentgym/GuessNumber-v0").entry_point == spec.entry_point  # the built-in is kept
    agentgym.register("GuessNumber-v0", spec.entry_point, **spec.kwargs)  # the same env again: allowed
    try:
        agentgym.register("GuessNumber-v0", "my_plugin.env:Impostor", override=True)
        assert gymnasium.spec("agentgym/GuessNumber-v0").entry_point == "my_plugin.env:Impostor"
    finally:
        agentgym.register("GuessNumber-v0", spec.entry_point, override=True, **spec.kwargs)
