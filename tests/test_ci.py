""".ci/run: a failed install fails CI (its output filter must keep pip's exit status)."""

import subprocess
from pathlib import Path

CI = Path(__file__).resolve().parent.parent / ".ci" / "run"


def quiet(command: str) -> subprocess.CompletedProcess:
    """Run `quiet COMMAND` with the function as .ci/run defines it, under its shell options."""
    lines = CI.read_text().splitlines()
    start = lines.index("quiet() {")
    body = "\n".join(lines[start : lines.index("}", start) + 1])
    script = f"set -euo pipefail\n{body}\nquiet {command}\necho reached"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True)


def test_a_failing_install_command_fails_the_ci_script():
    out = quiet("sh -c 'echo \"ERROR: No matching distribution found for nope\"; exit 1'")
    assert out.returncode == 1 and "reached" not in out.stdout
    assert "No matching distribution" in out.stdout  # pip's own message is shown


def test_the_filter_hides_only_pips_location_notices_and_keeps_success():
    out = quiet("sh -c 'echo \"WARNING: Location x is ignored\"; echo kept'")
    assert out.returncode == 0 and "reached" in out.stdout
    assert "kept" in out.stdout and "is ignored" not in out.stdout
    assert quiet("true").returncode == 0  # no output at all: grep finds nothing, still a success
