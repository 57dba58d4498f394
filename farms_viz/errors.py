"""The one exception type users can cause."""


class FarmsError(Exception):
    """A problem the user can act on (bad file, bad setting, odd tensor).

    The message is one plain sentence; the CLI prints it and exits non-zero,
    the app shows it with ``st.error``. Never raised for programming errors.
    """
