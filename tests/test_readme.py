"""The README's code runs as written."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_registration_example_is_at_most_30_lines_and_runs(tmp_path):
    block = next(b for b in python_blocks() if "agentgym.register(" in b)
    assert len([line for line in block.splitlines() if line.strip()]) <= 30
    script = tmp_path / "example.py"
    script.write_text(block)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_every_python_block_runs(tmp_path):
    for i, block in enumerate(python_blocks()):
        if "with the server above running" in block:
            continue  # run with its server by test_using_agentgym_with_other_tools_runs_as_written
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"README block {i} failed:\n{block}\n{out.stderr}"


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert "pip install torch==2.13.0" in first_block[0]
    assert first_block[1].startswith("bash .ci/run")
    assert Path(README.parent / ".ci" / "run").exists()


def test_the_main_job_runs_as_written_on_a_tiny_model(tmp_path):
    """The README's first command, agentgym parts verbatim (run where `configs/` is), with
    overrides appended that shrink it to seconds: the tiny random model, one step."""
    line = re.search(r"```bash\n(.*?)```", README.read_text(), re.DOTALL).group(1).strip().splitlines()[0]
    commands = [c.strip().split() for c in line.split("&&") if c.strip().startswith(".venv/bin/agentgym")]
    assert [c[1] for c in commands] == ["train", "eval"]
    (tmp_path / "configs").symlink_to(README.parent / "configs")
    shrink = {
        "train": [
            "policy.model=tiny-random",
            "steps=1",
            "tasks_per_step=2",
            "samples_per_task=2",
            "warm_start.episodes=4",
            "warm_start.horizon=3",
            "eval.every=0",
            "eval.num_tasks=2",
            "eval.horizons=[1,2]",
            "threads=1",
            "progress=false",
        ],
        "eval": ["env.num_tasks=2", "horizons=[1,2]", "progress=false"],
    }
    for cmd in commands:
        args = [sys.executable, "-m", "agentgym.cli", *cmd[1:], *shrink[cmd[1]]]
        out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}"
    assert (tmp_path / "runs" / "quickstart" / "training.png").exists()
    assert (tmp_path / "runs" / "quickstart_eval" / "success_vs_turns.png").exists()
    results = json.loads((tmp_path / "runs" / "quickstart_eval" / "results.json").read_text())
    assert results["model"].endswith("runs/quickstart/final")
    # The viewer's export command, as the README writes it, on those runs.
    view = re.search(r"```bash\n(agentgym view .*?)```", README.read_text(), re.DOTALL).group(1).splitlines()
    export = next(line for line in view if "--export" in line).split("#")[0].split()
    out = subprocess.run([sys.executable, "-m", "agentgym.cli", *export[1:]], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trajectories.jsonl" in (tmp_path / "site" / "index.html").read_text()


def test_your_own_site_runs_as_written(tmp_path):
    """The README's site config, task file and eval command, against a tiny static site."""
    from agentgym.envs.web.oracle import tool_call
    from agentgym.envs.web.site import SiteEnv
    from agentgym.envs.web.snapshot import find_ref

    text = README.read_text().split("### Your own site", 1)[1]
    config = re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1)
    tasks = re.search(r"```json\n(.*?)```", text, re.DOTALL).group(1)
    command = re.search(r"```bash\n(agentgym eval .*?)\n```", text, re.DOTALL).group(1)
    (tmp_path / "mysite.yaml").write_text(config)
    (tmp_path / "tasks.jsonl").write_text(tasks)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text('<title>Home</title><h1>Hello</h1><a href="about.html">About</a>')
    (tmp_path / "public" / "about.html").write_text("<title>About</title><p>About us.</p>")
    env = SiteEnv(tmp_path / "mysite.yaml")
    try:
        env.reset(options={"task_id": "greeting"})
        assert env.step("<answer>Hello</answer>")[1] == 1.0
        obs, _ = env.reset(options={"task_id": "about"})
        obs, *_ = env.step(tool_call("click", ref=find_ref(obs, "link", "About")))
        assert env.step("<answer>done</answer>")[1] == 1.0
    finally:
        env.close()
    (tmp_path / "configs").symlink_to(README.parent / "configs")
    shrink = [
        "policy.model=tiny-random",
        "sampling.max_new_tokens=8",
        "progress=false",
        f"output_dir={tmp_path / 'out'}",
    ]
    args = [*shlex.split(command)[1:], *shrink]
    out = subprocess.run([sys.executable, "-m", "agentgym.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["env"] == "agentgym/Site-v0"


def test_using_agentgym_with_other_tools_runs_as_written(tmp_path):
    """The OpenEnv route: the README's `agentgym serve` line, its client block, and its
    `agentgym eval` line on OpenEnv-v0 (shrunk by appended overrides)."""
    import socket
    import time

    text = README.read_text().split("## Using agentgym with other tools", 1)[1].split("\n## ", 1)[0]
    serve_line, eval_line = (b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.DOTALL))
    client = next(b for b in python_blocks() if "with the server above running" in b)
    server = subprocess.Popen([sys.executable, "-m", "agentgym.cli", *shlex.split(serve_line)[1:]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        port = int(re.search(r"--port (\d+)", serve_line).group(1))
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        (tmp_path / "client.py").write_text(client)
        out = subprocess.run([sys.executable, str(tmp_path / "client.py")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "lower than 8" in out.stdout, out.stderr
        (tmp_path / "configs").symlink_to(README.parent / "configs")
        shrink = ["policy.model=tiny-random", "horizons=[1,2]", "sampling.max_new_tokens=8", "progress=false",
                  f"output_dir={tmp_path / 'out'}"]  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "agentgym.cli", *shlex.split(eval_line)[1:], *shrink],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        results = json.loads((tmp_path / "out" / "results.json").read_text())
        assert results["env"] == "agentgym/OpenEnv-v0" and results["aborted"] == 0
    finally:
        server.terminate()
        server.wait(10)
