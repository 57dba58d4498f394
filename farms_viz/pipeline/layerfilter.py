"""The layer-name filter: a regular expression matched in linear time (RE2), one place for all callers.

Python's ``re`` backtracks: ``([\\w.]|[\\w.])*Z`` on MiniLM's names or ``(a+)+$`` took
exponential time and froze the served app (every session shares its process). RE2
(google-re2) runs an automaton, linear in the name's length for any pattern; it rejects
what needs backtracking (back-references, look-around) with a sentence instead.
"""

from __future__ import annotations

from typing import Callable, Iterable

import re2

from farms_viz.errors import FarmsError

#: Longest accepted pattern. A layer filter is a few words; a cap bounds compile time and memory.
MAX_PATTERN = 1000
#: RE2's memory budget for one compiled pattern (bytes); a larger automaton is refused.
MAX_MEM = 8 * 2**20

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every parse error to stderr
_OPTIONS.max_mem = MAX_MEM


def compile_filter(pattern: str | None) -> Callable[[str], bool]:
    """A matcher ``name -> bool``: True where ``pattern`` matches anywhere in the name.

    An empty or None pattern matches every name. FarmsError for a pattern that is too long,
    not valid RE2 syntax or too large to compile.
    """
    if not pattern:
        return lambda name: True
    if not isinstance(pattern, str):
        raise FarmsError(f"the layer filter must be text (got {type(pattern).__name__}).")
    if len(pattern) > MAX_PATTERN:
        raise FarmsError(f"the layer filter is {len(pattern):,} characters long; at most {MAX_PATTERN:,} are accepted.")
    try:
        rx = re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        why = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise FarmsError(f"the layer filter {pattern!r} is not a valid regular expression ({why}); "
                         "back-references and look-around are not supported.") from None
    return lambda name: rx.search(str(name)) is not None


def filter_names(names: Iterable[str], pattern: str | None) -> list[bool]:
    """One bool per name: whether ``pattern`` matches it (see :func:`compile_filter`)."""
    match = compile_filter(pattern)
    return [match(n) for n in names]
