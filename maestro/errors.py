"""Exceptions that carry a decision about a message: retry later, reject for good, or a remote failure."""

from __future__ import annotations


class MaestroError(Exception):
    """Base of every error Maestro raises on purpose."""


class Retry(MaestroError):
    """Redeliver the message after `delay` seconds (consumer: nak(delay); request/reply: error 503)."""

    def __init__(self, delay: float = 1.0, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay}s")
        self.delay = delay
        self.reason = reason


class Backpressure(Retry):
    """No room now, which is not a verdict: try again after `delay` seconds (consumer: nak(delay);
    request/reply: error 429, so that a caller can tell it from a peer that cannot answer)."""


class CannotRun(MaestroError):
    """The service cannot run on this host as it is configured (the text says why): not a fault a restart
    would mend, so it ends with EXIT_CONFIG like a setting it cannot read."""


class Reject(MaestroError):
    """Never retry: the message goes to the DLQ with `reason` (consumer: term; request/reply: error 400).

    `notify=False` when the message speaks for a task that is not its sender's (an id owned by another
    tenant, a body naming another tenant than its subject): the DLQ reason is then the only answer, and
    the consumer's dead-letter hook does not touch that task.
    """

    def __init__(self, reason: str, *, notify: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.notify = notify


class RemoteError(MaestroError):
    """A request/reply peer answered with an error `code` (400, 404, 500, 503) and `description`."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description

    @property
    def transient(self) -> bool:
        """Whether the same call may well be answered later: nobody answered or the peer failed (5xx), or it
        had no room now (429, Backpressure)."""
        return self.code >= 500 or self.code == 429


class NotFound(MaestroError):
    """The thing asked for does not exist."""


class WrongRevision(MaestroError):
    """A compare-and-set lost: the entry is no longer at the revision the writer read."""
