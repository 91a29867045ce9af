"""Errors the user fixes from the message alone: the command line prints them in one line, with
no traceback, and exits with status 2 (`cli.run`). Every other error keeps its traceback."""


class UserError(Exception):
  """A mistake in the command, the config or the files given, named in the message with its fix."""


class ConfigError(UserError, ValueError):
  """A config that cannot run; the message names the key, its value and the fix."""


class NotFound(UserError, FileNotFoundError):
  """A file, folder, run or checkpoint that is not there; the message names it."""


class BadInput(UserError, ValueError):
  """An argument or file that exists but cannot be used as given."""
