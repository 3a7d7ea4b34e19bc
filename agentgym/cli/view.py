"""`agentgym view PATH [PATH ...]`: browse runs, episodes, turns and tokens in a browser.

    agentgym view runs/quickstart                 # a train run: curves, evaluations, episodes
    agentgym view runs/eval-a runs/eval-b         # several runs: success vs turns overlaid
    agentgym view runs/eval/trajectories.jsonl    # one trajectory file (JSONL or Parquet)
    agentgym view runs/ --port 8765               # a fixed port (default: a free one)
    agentgym view runs/quickstart --export site/  # the same pages as a static site (capped by --max-mb)

It serves on 127.0.0.1 (another interface only with --host), read-only, and only the files
under the paths given. A large trajectory file is indexed once (cached in
$AGENTGYM_CACHE/view, never in the run folder) and then opens in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentgym.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "view",
        help="browse runs, episodes, turns and tokens in a local web page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="run folders (eval, train, experiment) or trajectory files")
    p.add_argument("--port", type=int, default=0, help="the port (default: a free one, printed)")
    p.add_argument(
        "--host", default="127.0.0.1", help="the interface to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--export", type=Path, metavar="DIR", help="write the pages as a static site into DIR (new or empty)"
    )
    p.add_argument("--max-mb", type=float, default=50.0, help="the export's size cap in MB (default 50)")
    p.add_argument(
        "--cache", type=Path, help="where trajectory files' indexes are kept (default: $AGENTGYM_CACHE/view)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from agentgym.view import Viewer, make_server

    try:
        viewer = Viewer(args.paths, cache=args.cache)
    except FileNotFoundError as exc:
        raise UserError(f"agentgym view: {exc}") from None
    if args.export is not None:
        from agentgym.view.export import export_site

        try:
            done = export_site(viewer, args.export, args.max_mb)
        except FileExistsError as exc:
            raise UserError(f"agentgym view --export: {exc}") from None
        print(
            f"exported {done['pages']} pages ({done['bytes'] / 1e6:.1f} MB) to {args.export}/index.html"
            + (f"; {done['left_out']} pages left out by the {args.max_mb:g} MB cap" if done["left_out"] else "")
        )
        return 0
    try:
        server = make_server(viewer, args.host, args.port)
    except OSError as exc:
        raise UserError(
            f"agentgym view: cannot listen on {args.host}:{args.port} ({exc.strerror}): try another --port"
        ) from None
    host, port = server.server_address[:2]
    runs = len(viewer.runs)
    print(f"agentgym view: {runs} run(s), {len(viewer.loose)} other trajectory file(s)", file=sys.stderr)
    print(f"serving on http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
