"""``from tool_errors import ToolUserError`` — kept for tools written for the system Skriptoteket replaces."""


class ToolUserError(Exception):
    """Raise to end the run as failed and show exactly this message to the user (no traceback)."""
