"""Errors a person can cause. Each carries one clear sentence, shown as-is in the UI and on the CLI."""


class GhostProbeError(Exception):
    """Base for every error caused by input, configuration or an unavailable service.

    ``str(err)`` is a single sentence meant for a person; never a traceback.
    """


class VideoError(GhostProbeError):
    """A path that is missing, not a video, corrupt, truncated, empty, or a folder with no images."""


class EngineError(GhostProbeError):
    """An engine that cannot run: not configured, package missing, endpoint down, bad credentials."""


class PromptError(GhostProbeError):
    """A prompt template that cannot be loaded or rendered."""
