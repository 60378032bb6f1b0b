"""Expected errors: each message says what is wrong and how to fix it; `exit_code` is what the CLI exits with."""


class S2SError(Exception):
    """An expected failure, shown to the user as one line."""

    exit_code = 1


class DataError(S2SError):
    """A corpus or input file cannot be used."""


class RunDirError(S2SError):
    """A run directory is missing something a command needs, or does not match itself."""


class ConfigError(S2SError):
    """A configuration value or combination of options is invalid."""


class TrainingError(S2SError):
    """Training cannot go on (diverged loss, locked run dir, ...)."""


class TrainingInterrupted(TrainingError):
    """Training stopped by a signal after saving a checkpoint; exits 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
