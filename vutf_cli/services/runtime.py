"""Runtime: what a command hands to the services — settings plus a lazily built Database."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vutf_cli.db.database import Database
    from vutf_cli.settings import Settings


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            from vutf_cli.db.database import Database

            self._db = Database(self.settings)
        return self._db

    def ensure_schema(self) -> None:
        self.db.ensure_schema()

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
