"""BFCL multi-turn: the Berkeley Function Calling Leaderboard v4 multi-turn tasks (needs bfcl-eval)."""

from agentgym.registration import register as _register

_ENTRY = "agentgym.envs.tools.bfcl.env:BFCLMultiTurnEnv"
_VARIANTS = {
    "Base": ("base", "the plain multi-turn conversations"),
    "MissFunc": ("miss_func", "a needed function is held out until a later turn"),
    "MissParam": ("miss_param", "a request lacks a required parameter, given in a later turn"),
    "LongContext": ("long_context", "the backends hold long, distracting states"),
}


def register() -> None:
    _register(
        "BFCL-MultiTurn-v0",
        _ENTRY,
        description="BFCL v4 multi-turn function calling, all four categories (800 tasks), scored by BFCL's checker.",
        categories=("base", "miss_func", "miss_param", "long_context"),
    )
    for suffix, (category, what) in _VARIANTS.items():
        _register(
            f"BFCL-MultiTurn-{suffix}-v0",
            _ENTRY,
            description=f"BFCL v4 multi-turn, {category} category: {what}.",
            categories=(category,),
        )
