"""bench/gpu_check.sh's smoke mode: the GPU check's every part runs on the CPU and writes
its figures as it goes."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_every_part_in_its_cpu_smoke_mode(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--cpu", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures = [json.loads(line) for line in (tmp_path / "figures.jsonl").read_text().splitlines()]
    parts = [f["part"] for f in figures]
    assert parts == ["device", "step", "step", "generate", "loop", "loop"]
    for step in (f for f in figures if f["part"] == "step"):
        assert "error" not in step and 0.5 < step["measured_over_planned"] < 2.0, step
    assert figures[3]["generate_tokens_per_s"] > 0
    assert [(f["async_steps"], f["returncode"]) for f in figures[4:]] == [(0, 0), (1, 0)]  # both loops train
