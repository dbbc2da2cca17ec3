"""Secret values, hidden wherever tasker writes: one masker for every writer.

A global whose name marks it as a secret (``SECRET_``/``MASK_``/``HIDE_``/
``PASSWORD_``/``TOKEN_`` prefixes, ``_PASSWORD``/``_TOKEN``/``_SECRET``/``_KEY``
suffixes, any case) has its value replaced by ``<masked len=N>`` in every line,
document and row a run writes: the console and log (command lines, outputs,
errors), the ``--output-json`` document, project summaries, the lock file's
snapshot and the human-readable parts of the recovery state.  The value counts
whether it was written in the file or came from the environment
(``DB_PASSWORD=$DB_PASS_ENV``).  ``Masker.text`` masks a string,
``Masker.data`` a JSON-like structure; a writer added later (an event stream,
a history database) takes the run's ``Masker`` and calls one of the two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SECRET_PREFIXES = ("SECRET_", "MASK_", "HIDE_", "PASSWORD_", "TOKEN_")
SECRET_SUFFIXES = ("_PASSWORD", "_TOKEN", "_SECRET", "_KEY")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(SECRET_PREFIXES) or upper.endswith(SECRET_SUFFIXES)


class Masker:
    """Replaces secret values by ``<masked len=N>`` (longest value first, so a secret that
    contains another is hidden whole)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.pairs = [(v, f"<masked len={len(v)}>") for v in values]
        # one pass; a mark already in the text is kept as it is, so masking twice changes nothing
        self._pattern = re.compile("|".join([_MARK, *(re.escape(v) for v in values)])) if values else None

    @classmethod
    def for_globals(cls, globals_: dict) -> Masker:
        """The masker of a workflow's globals (name -> variable with ``.value``)."""
        return cls(var.value for name, var in globals_.items() if is_secret_name(name))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def text(self, text: str) -> str:
        if self._pattern is None or not any(value in text for value, _shown in self.pairs):
            return text
        return self._pattern.sub(_shown, text)

    def data(self, value):
        """A copy of a JSON-like value (dicts, lists, strings ...) with every string masked."""
        if not self.pairs:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


_MARK = r"<masked len=\d+>"


def _shown(m: re.Match) -> str:
    text = m.group(0)
    return text if text.startswith("<masked len=") and text.endswith(">") and len(text) > 13 and \
        text[12:-1].isdigit() else f"<masked len={len(text)}>"


NO_SECRETS = Masker()
