"""The one error type of the command line.

Anything a user can fix (a bad setting, a missing file, a busy store, a broker
that does not answer) is raised as ``UserError`` or a subclass; the entry point
(``streams/cli.py``) prints it as one line on stderr and exits 2. Standard
library only: every module may import it cheaply.
"""


class UserError(Exception):
    """An error the user can fix; printed as one line, without a traceback."""
