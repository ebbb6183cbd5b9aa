"""Messages from the engine's thread to the UI thread."""

from __future__ import annotations

from textual.message import Message

from engine.client import Sample


class EventsAvailable(Message, bubble=False):
    """New engine events wait in the app's inbox. One pending message stands for any number of
    events (a newer one replaces it), so a fast engine cannot flood the UI's queue."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsAvailable)


class SystemSampled(Message, bubble=False):
    """A system sample read on a worker thread (NVML can block): the panel shows it on the UI thread."""

    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SystemSampled)
