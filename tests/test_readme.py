"""The README's code runs as written."""

import re
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
