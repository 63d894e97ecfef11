"""The live modes' user-facing error: the message names the key or file, what was found and what is expected."""
from engine.errors import UserError


class LiveError(UserError):
    """A live/paper/dry_run setting or state file is wrong, or a safeguard refuses to start."""
