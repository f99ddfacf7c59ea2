"""The ledger's Lua scripts: loaded from the files beside this module, behind constants
generated from the run model (field names, state names, the terminal set)."""

from __future__ import annotations

import time
from importlib import resources

from worker.run.model import TERMINAL_STATES, RunState

# The run hash's fields: the record, and what others write beside it without a CAS.
F_DOC, F_STATE, F_VERSION = "doc", "state", "version"
F_CANCEL, F_RERUN, F_POLLS, F_FINISHED, F_FOLLOWUP = (
    "cancel",
    "rerun",
    "polls",
    "finished_job",
    "followup",
)
RUN_FIELDS = [F_DOC, F_CANCEL, F_RERUN, F_POLLS, F_FINISHED]


def lua_prelude() -> str:
    """Lua constants generated from the model: field names, states, the terminal set."""
    fields = {
        "F_DOC": F_DOC,
        "F_STATE": F_STATE,
        "F_VERSION": F_VERSION,
        "F_CANCEL": F_CANCEL,
        "F_RERUN": F_RERUN,
        "F_POLLS": F_POLLS,
    }
    lines = [f"local {name} = '{value}'" for name, value in fields.items()]
    lines += [f"local S_{state.name} = '{state.value}'" for state in RunState]
    terminal = ", ".join(f"{s.value} = true" for s in sorted(TERMINAL_STATES))
    lines.append(f"local TERMINAL = {{{terminal}}}")
    return "\n".join(lines) + "\n"


def script(name: str) -> str:
    """The Lua script ``name`` (a file beside this module) behind its generated constants."""
    body = resources.files("worker.run").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return lua_prelude() + body


def now_ms() -> int:
    """Wall-clock milliseconds (scores of Redis sorted sets)."""
    return int(time.time() * 1000)


def oom_safe_script(name: str) -> str:
    """``script(name)`` flagged to run while Redis is full (``allow-oom``): the archiver must
    be able to free memory when every other write is refused."""
    return "#!lua flags=allow-oom\n" + script(name)
