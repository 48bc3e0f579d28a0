"""The project's one error base: what a user asked for cannot be done as asked.

    try:
        ...
    except UserError as error:   # the CLI: one line and exit 2; a flow run: Failed with the message
        print(f"error: {error}")

A `UserError`'s message is one line (a list of problems may follow on its own lines) that names
the value received, where it came from and what to do instead. Anything else that escapes is a
bug: it keeps its traceback.
"""


class UserError(Exception):
    """A request that cannot be done as given: a missing source, a bad setting, no trained model."""
