"""The one exception type for mistakes a user can fix (bad config, missing data, wrong workdir)."""

import errno


class UserError(Exception):
    """A problem with the user's input, reported as one sentence on stderr without a traceback."""


def storage_error(path: str, error: BaseException) -> UserError | None:
    """One sentence for a failure to write ``path`` (a full disk, a read-only file system, no
    permission, ...), whether it comes as an ``OSError`` or as Orbax's wrapped error text; ``None``
    when ``error`` is not about storage."""
    text = str(error)
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC or "No space left on device" in text or "os_error_code='28'" in text:
        return UserError(
            f"no space left on the device holding {path}; free some and rerun the same command "
            "(it resumes from the last complete checkpoint)"
        )
    if code == errno.EROFS or "Read-only file system" in text:
        return UserError(f"{path} is on a read-only file system; use a --workdir where jaxlth can write")
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return UserError(f"no permission to write {path}; use a --workdir where jaxlth can write")
    if isinstance(error, OSError):
        where = error.filename or path
        return UserError(f"cannot write {where}: {error.strerror or text}")
    return None
