"""The openai backend against a real third-party server: transformers' own `transformers serve`.

It takes only text prompts on /v1/completions (422 "prompt must be a string" for token
ids), refuses vLLM's sampling fields, and is pinned to the model it was started with
(400 for another name). Needs `pip install 'transformers[serving]'` (the dev extras).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs transformers[serving]: pip install 'transformers[serving]'")
pytest.importorskip("uvicorn", reason="needs transformers[serving]: pip install 'transformers[serving]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from agentgym.policy.models import load_model

    folder = tmp_path_factory.mktemp("served") / "tiny"
    model, tok = load_model("tiny-random")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    port = _free_port()
    cli = Path(sys.executable).parent / "transformers"
    log = open(folder.parent / "serve.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(cli), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                if json.load(r)["data"]:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"transformers serve did not start: {(folder.parent / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield base, str(folder)
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_a_text_only_server_runs_an_evaluation_with_retokenized_trajectories(served, tmp_path, capsys):
    from agentgym.config import EvalConfig, load_config
    from agentgym.eval import evaluate

    base, folder = served
    cfg = load_config(
        None,
        EvalConfig,
        [
            "policy.backend=openai",
            f"policy.model={folder}",
            f"policy.base_url={base}",
            "env.num_tasks=2",
            "samples_per_task=1",
            "horizons=[1,2]",
            "sampling.max_new_tokens=6",
            "progress=false",
            f"output_dir={tmp_path}",
        ],
    )
    result = evaluate(cfg)
    assert all(t.end_reason != "aborted" for t in result.trajectories), [t.error for t in result.trajectories]
    assert all(t.retokenized and t.turns >= 1 for t in result.trajectories)
    err = capsys.readouterr().err
    assert "refuses token-id prompts" in err and "refuses vLLM's sampling fields" in err


def test_a_model_name_the_server_is_not_pinned_to_is_one_line_with_its_reason(served, tmp_path, capsys):
    from agentgym.cli import main

    base, _ = served
    args = [
        "eval",
        "policy.backend=openai",
        "policy.model=smollm2-135m",
        f"policy.base_url={base}",
        "env.num_tasks=1",
        "samples_per_task=1",
        "horizons=[1]",
        "progress=false",
        f"output_dir={tmp_path}",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    line = err[-1]
    assert "Traceback" not in "".join(err), err
    assert "the server refused the request for model 'smollm2-135m' (400: Server is pinned to" in line
