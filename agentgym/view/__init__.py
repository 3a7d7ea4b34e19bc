"""`agentgym view`: a local web page to browse runs, episodes, turns and tokens.

The server (`server.py`) is read-only and serves only what is under the paths given
(`sources.py`); the pages (`pages.py`) carry no script and escape every text a run or a
model wrote; charts are SVG drawn on the server (`svg.py`); a trajectory file's episode
table comes from an index built once and cached outside the run folders (`index.py`).
"""

from agentgym.view.index import EpisodeIndex
from agentgym.view.server import Viewer, make_server

__all__ = ["EpisodeIndex", "Viewer", "make_server"]
