"""A plugin module that fails to import (the config must say where it is named)."""

import pharos_no_such_dependency  # noqa: F401


class Never:
    def collect(self):
        return []
