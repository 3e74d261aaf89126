"""User-facing errors: bad input is reported with file, key path and expectation, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by user input (a file, a key, a value); shown without a traceback.

    Attributes:
        file: The file the error refers to, if any.
        problems: One line per problem, each ``key.path: message``.
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, problems: list[str] | None = None):
        self.file = file
        self.problems = problems or []
        super().__init__(message)

    def __str__(self) -> str:
        head = f"{self.file}: {self.args[0]}" if self.file else str(self.args[0])
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)
