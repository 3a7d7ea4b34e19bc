"""MCPGit: the MCP env on a real published server, `mcp-server-git` (PyPI), over a fresh
repository per episode.

Each task's repository is built from its seed before the episode (a handful of commits
with fixed authors and dates, sometimes an uncommitted change), and the server is started
on it (`-r REPO`: it may touch no other repository). Templates:

- added_by: "Which commit added the file F?" (git_log; the answer is the commit's message);
- count: "How many commits does the repository have?" (git_log);
- changed_in: "Which file did the commit 'M' add or change?" (git_log, then git_show);
- branch: "Create a branch named B from main" (git_create_branch; checked in the repository);
- commit: "Commit the change to F with the message 'M'" (git_add, git_commit; checked).

`GitOracle` plays every template in its `min_turns`, reading what it needs (the path, the
commit ids) from the observations, as an agent would.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentgym.envs.mcp.env import MCPEnv

from agentgym.env import Task
from agentgym.oracle import Oracle

__all__ = ["GitMCPEnv", "GitOracle", "git_tasks"]

FILES = ("parser.py", "cli.py", "README.md", "utils.py", "config.yaml", "tests.py", "server.py", "notes.txt")
VERBS = ("Add", "Introduce", "Create", "Start")
BRANCHES = ("feature-login", "fix-typo", "release-1.2", "docs-update", "experiment", "hotfix")
TEMPLATES = ("added_by", "count", "changed_in", "branch", "commit")
PER_TEMPLATE = 20


def _history(seed: int) -> tuple[list[tuple[str, str, str]], str | None]:
    """([(file, content, message)], the file left with an uncommitted change or None)."""
    rng = random.Random(f"git-{seed}")
    files = rng.sample(FILES, rng.randint(3, 6))
    commits = [(f, f"{f} v1 ({seed})\n", f"{rng.choice(VERBS)} {f}") for f in files]
    return commits, rng.choice(files)


def git_tasks(split: str) -> list[dict[str, Any]]:
    """Every task of a split (20 per template in all, a fifth of them test)."""
    out = []
    for template in TEMPLATES:
        for k in range(PER_TEMPLATE):
            seed = TEMPLATES.index(template) * 1000 + k
            if ("test" if k % 5 == 0 else "train") != split:
                continue
            commits, dirty = _history(seed)
            rng = random.Random(f"git-task-{seed}")
            row: dict[str, Any] = {"id": f"git-{template}-{k:03d}", "split": split, "seed": seed, "template": template}
            if template == "added_by":
                f, _, message = rng.choice(commits)
                row.update(instruction=f"Which commit added the file {f}? Answer with its commit message.",
                           answer=message, min_turns=2, file=f)  # fmt: skip
            elif template == "count":
                row.update(instruction="How many commits does the repository have?", answer=str(len(commits)),
                           min_turns=2)  # fmt: skip
            elif template == "changed_in":
                f, _, message = rng.choice(commits)
                row.update(instruction=f"Which file did the commit with the message '{message}' add? Answer "
                                       "with the file's name.", answer=f, min_turns=3, message=message)  # fmt: skip
            elif template == "branch":
                name = rng.choice(BRANCHES)
                row.update(instruction=f"Create a branch named {name} from main, then answer done.",
                           branch=name, min_turns=2)  # fmt: skip
            else:
                message = f"Update {dirty}"
                row.update(
                    instruction=f"The file {dirty} has an uncommitted change. Commit it, and only it, with "
                    f"the message '{message}', then answer done.",
                    file=dirty,
                    message=message,
                    min_turns=3,
                    dirty=dirty,
                )
            out.append(row)
    return out


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@example.org", "GIT_AUTHOR_DATE": "2026-01-01T12:00:00+00:00",
           "GIT_COMMITTER_DATE": "2026-01-01T12:00:00+00:00", "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {done.stderr.strip()}")
    return done.stdout


def build_repo(repo: Path, seed: int, dirty: bool) -> None:
    """The task's repository: its commits, and the uncommitted change when `dirty`."""
    commits, changed = _history(seed)
    _git(repo, "init", "-q", "-b", "main")
    for f, content, message in commits:
        (repo / f).write_text(content)
        _git(repo, "add", f)
        _git(repo, "commit", "-q", "-m", message)
    if dirty:
        (repo / changed).write_text((repo / changed).read_text() + "one more line\n")
        (repo / "scratch.txt").write_text("not part of the task\n")  # an untracked file: commit only the asked one


class GitMCPEnv(MCPEnv):
    """mcp-server-git on a fresh repository per episode: history questions, branches, commits.

    Args:
        step_timeout_s: the longest a git tool call may take.
        **kwargs: `TextEnv` arguments (max_turns, split, ...).
    """

    default_max_turns = 10

    def __init__(self, step_timeout_s: float = 30.0, **kwargs: Any):
        self.command = [sys.executable, "-m", "mcp_server_git"]
        self.repo: Path | None = None
        super().__init__(step_timeout_s=step_timeout_s, **kwargs)

    def task_rows(self) -> list[dict[str, Any]]:
        return git_tasks("train") + git_tasks("test")

    def prepare(self, task: Task) -> str:
        self._remove_repo()
        self.repo = Path(tempfile.mkdtemp(prefix="agentgym-git-")) / "repo"
        self.repo.mkdir()
        build_repo(self.repo, task.metadata["seed"], dirty=task.metadata["template"] == "commit")
        return f"The repository is at {self.repo} (pass it as repo_path)."

    def server_command(self, task: Task) -> list[str]:
        return [*self.command, "-r", str(self.repo)]

    def check(self, task: Task, answer: str) -> tuple[bool, str]:
        meta = task.metadata
        if meta["template"] == "branch":
            branches = _git(self.repo, "branch", "--format=%(refname:short) %(objectname)").split("\n")
            main = _git(self.repo, "rev-parse", "main").strip()
            ok = f"{meta['branch']} {main}" in branches
            return ok, "the branch is there, at main" if ok else f"no branch {meta['branch']} at main"
        if meta["template"] == "commit":
            head = _git(self.repo, "log", "-1", "--format=%s").strip()
            changed = _git(self.repo, "show", "--name-only", "--format=", "HEAD").split()
            status = _git(self.repo, "status", "--porcelain").splitlines()
            if head != meta["message"]:
                return False, f"the last commit's message is {head!r}"
            if changed != [meta["file"]]:
                return False, f"the last commit changed {changed}, not only {meta['file']}"
            if any(line.endswith(meta["file"]) for line in status):
                return False, f"{meta['file']} still has uncommitted changes"
            return True, "committed"
        return super().check(task, answer)

    def _remove_repo(self) -> None:
        if self.repo is not None:
            shutil.rmtree(self.repo.parent, ignore_errors=True)
            self.repo = None

    def close(self) -> None:
        super().close()
        self._remove_repo()


def _call(name: str, **arguments: Any) -> str:
    import json

    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class GitOracle(Oracle):
    """Plays a GitMCPEnv task in its min_turns, reading the repository's path and the
    commit ids from the observations."""

    def __init__(self, tasks: Task | list[Task]):
        self.tasks = [tasks] if isinstance(tasks, Task) else list(tasks)

    def respond(self, messages: list[dict[str, Any]]) -> str:
        first = messages[1]["content"]
        task = next(t for t in self.tasks if t.instruction in first)
        repo = re.search(r"The repository is at (\S+) ", first).group(1)
        meta, step = task.metadata, sum(m["role"] == "assistant" for m in messages)
        last = messages[-1]["content"] if step else ""
        template = meta["template"]
        if template in ("added_by", "count"):
            return (
                _call("git_log", repo_path=repo, max_count=100) if step == 0 else f"<answer>{meta['answer']}</answer>"
            )
        if template == "changed_in":
            if step == 0:
                return _call("git_log", repo_path=repo, max_count=100)
            if step == 1:
                blocks = re.findall(r"Commit: (\w+)\n(?:.*\n)*?Message: (.*)", last)  # one per commit, in order
                sha = next(sha for sha, message in blocks if message.strip() == meta["message"])
                return _call("git_show", repo_path=repo, revision=sha)
            changed = re.search(r"^\+\+\+ b/(\S+)", last, re.M).group(1)
            return f"<answer>{changed}</answer>"
        if template == "branch":
            if step == 0:
                return _call("git_create_branch", repo_path=repo, branch_name=meta["branch"], base_branch="main")
            return "<answer>done</answer>"
        if step == 0:
            return _call("git_add", repo_path=repo, files=[meta["file"]])
        if step == 1:
            return _call("git_commit", repo_path=repo, message=meta["message"])
        return "<answer>done</answer>"
