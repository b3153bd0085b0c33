"""Run settings: what a command computes with, resolved once at the edge.

The CLI, the service and the scheduler build one :class:`RunSettings` from ``tribes.toml``
and the command's options (``--session-timeout 1h``, ``--as-of 2026-06-30``) and pass it
down; stages read it instead of parsing the configuration again. Stored run parameters
use its normalized form, so ``30m`` and ``1800s`` are the same setting.

Examples
--------
>>> from tribes.config import Config
>>> s = RunSettings.resolve(Config(), session_timeout="1800s")
>>> s.timeout_text, s.consent_mode
('30m', 'opt-out')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tribes.config import Config, format_duration, parse_duration

ConsentMode = Literal["opt-out", "opt-in"]

@dataclass(frozen=True)
class RunSettings:
    """The settings of one run, as values.

    Parameters
    ----------
    session_timeout
        A gap strictly longer than this starts a new session (DESIGN §5).
    consent_mode
        ``opt-out`` (everyone but those who opted out) or ``opt-in`` (only customers with
        an analytics grant).
    as_of
        Features are computed from events up to this instant (None: the newest event).
    max_ids_per_component
        Ids linked to more others than this are shared devices, not used for stitching.
    """

    session_timeout: timedelta = timedelta(minutes=30)
    consent_mode: ConsentMode = "opt-out"
    as_of: datetime | None = None
    max_ids_per_component: int = 50

    @classmethod
    def resolve(cls, config: Config, *, session_timeout: str | timedelta | None = None,
                as_of: datetime | None = None) -> RunSettings:
        """The settings from ``config``, with the command's options taking precedence."""
        if session_timeout is None:
            session_timeout = config.prep.session_timeout
        if isinstance(session_timeout, str):
            session_timeout = parse_duration(session_timeout)
        return cls(session_timeout=session_timeout,
                   consent_mode=config.privacy.consent_mode, as_of=as_of,
                   max_ids_per_component=config.prep.max_ids_per_component)

    @property
    def timeout_text(self) -> str:
        """The session timeout in its normalized text form (stored with runs)."""
        return format_duration(self.session_timeout)

    @property
    def timeout_s(self) -> float:
        return self.session_timeout.total_seconds()

    def replace(self, **changes: object) -> RunSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
