"""wispbill core: domain, persistence, plugin manager, web app and CLI.

Plugin authors import ``hookimpl`` from here to mark their hook implementations::

    from core import hookimpl

    @hookimpl
    def register_settings():
        ...
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "wispbill"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__all__ = ["hookimpl", "hookspec", "__version__", "PROJECT_NAME"]
