"""Reading tracejit's settings (TRACEJIT_* environment variables): one reader per kind of value.

Every setting is read through these functions where it is used, so that a value outside the
allowed ones fails there with a ValueError naming the variable, the value and what is allowed
(`TRACEJIT_NUM_THREADS='abc': expected a positive integer`), never later and never bare.
docs/settings.md lists every variable.
"""

from __future__ import annotations

import os
import re

OFF = ("0", "off", "false", "no")
ON = ("1", "on", "true", "yes")

_DIGITS = re.compile(r"[0-9]+")     # ASCII digits only: no sign, no underscores


def text(name: str) -> str | None:
    """The value of `name`, surrounding blanks removed; None when it is unset."""
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _bad(name: str, value: str, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r}: expected {allowed}")


def integer(name: str, default: int | None, minimum: int = 1,
            allowed: str = "a positive integer") -> int | None:
    """`name` as an integer of at least `minimum`; `default` when unset or empty."""
    value = text(name)
    if not value:
        return default
    if not _DIGITS.fullmatch(value) or int(value) < minimum:
        raise _bad(name, value, allowed)
    return int(value)


def flag(name: str, default: bool) -> bool:
    """`name` as on (one of ON) or off (one of OFF), in any case; `default` when unset or
    empty."""
    value = text(name)
    if not value:
        return default
    if value.lower() in ON + OFF:
        return value.lower() in ON
    raise _bad(name, value, f"one of {', '.join(ON)} (on) or {', '.join(OFF)} (off)")


def choice(name: str, choices: tuple[str, ...], default: str = "") -> str:
    """`name` as one of `choices` (exactly); `default` when unset or empty."""
    value = text(name)
    if not value:
        return default
    if value not in choices:
        raise _bad(name, value, f"one of {', '.join(map(repr, choices))} or nothing")
    return value


def folder(name: str, default: str | None = None, must_be_folder: bool = False) -> str | None:
    """The folder `name` names, `~` expanded: `default` when unset; None when empty or one of
    OFF (turned off). With `must_be_folder`, a path to something that exists but is not a
    folder is refused (one that does not exist yet is made by its user)."""
    value = text(name)
    if value is None:
        return default
    if not value or value.lower() in OFF:
        return None
    path = os.path.expanduser(value)
    if must_be_folder and os.path.exists(path) and not os.path.isdir(path):
        raise _bad(name, value, f"a folder, or one of {', '.join(OFF)} or nothing (off); "
                                "that path is not a folder")
    return path
