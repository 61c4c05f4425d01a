"""Errors that reach the user as one clear line, never a traceback."""


class FqtError(Exception):
    """Base class: the CLI prints `error: <message>` and exits 2."""


class ModelFormatError(FqtError):
    """The file is not a readable .tflite (truncated, corrupt, wrong schema)."""


class UnsupportedModelError(FqtError):
    """The model is readable but uses operators or options fqt does not support."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"model uses {len(problems)} unsupported construct(s): " + "; ".join(problems)
        )


class PlanDoesNotFitError(FqtError):
    """The memory plan exceeds the board's RAM or the configured pool."""


class BlobFormatError(FqtError):
    """A model blob failed validation."""
