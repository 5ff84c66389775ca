"""The errors a dataset reader raises: one message that names the path and shows the expected layout."""
from ..errors import UserError


class DatasetLayoutError(UserError, FileNotFoundError):
    """A dataset file or folder is missing; the message names it (and, once a reader has added it, the
    expected layout). `path` is the missing path when there is one."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path
        self.detail = message  # the message without the layout added by the reader
        self.layout_shown = False

    def add_context(self, text):
        """Append `text` (the reader's expected layout) to the message, once."""
        if not self.layout_shown and text:
            self.args = (f"{self.args[0]}\n{text}",)
        self.layout_shown = True
        return self


class DatasetFormatError(DatasetLayoutError, ValueError):
    """A dataset file exists but its content is not what the reader expects (a malformed line, an unknown
    class, invalid JSON)."""


class MissingImagesError(DatasetLayoutError):
    """Images listed by a split or annotation file are not on disk. One error for all of them."""

    SHOWN = 5

    def __init__(self, missing, total, source):
        self.missing = list(missing)
        shown = "\n".join(f"  {p}" for p in self.missing[:self.SHOWN])
        more = f"\n  ... and {len(self.missing) - self.SHOWN} more" if len(self.missing) > self.SHOWN else ""
        super().__init__(f"{len(self.missing)} of {total} images listed in {source} are missing:\n{shown}{more}",
                         path=self.missing[0])
