"""Reading user files for ``vutf users import``, and hashing their passwords.

This package never touches the database (``vutf_cli.services.user_transfer.import_users``
does, using what is read here): :mod:`.formats` reads a file into records,
:mod:`.validation` turns records into rows or problems (:mod:`.records`), and
:mod:`.hashing` hashes the plaintext passwords over a process pool.

Formats (``--format``, else the file's suffix, else sniffed from the first
character: ``[`` json, ``{`` jsonl, anything else csv):

* ``json``: one array of objects;
* ``jsonl``: one object per line (blank lines are skipped);
* ``csv``: a header row, then one row per user; UTF-8 with or without a byte
  order mark, ``\\n`` or ``\\r\\n`` line ends.

Columns:

* ``username`` and ``email`` (required), ``full_name``, ``is_superuser``,
  ``is_active`` (default true), ``is_verified``;
* exactly one of ``password`` (plaintext, subject to the password policy) and
  ``password_hash`` (an argon2id PHC string, e.g. from ``users export
  --include-hashes``; one with parameters weaker than the configured profile
  is refused unless ``--allow-weak-hashes``, which imports it to be rehashed
  at the user's next successful login);
* the other columns of ``users export`` (``id``, timestamps, ``version``...)
  are accepted and ignored, since the database assigns them anew, so an export
  can be imported as it is.  A row with ``is_deleted`` true is refused: a
  deleted user is not brought back to life by an import.
* Any other column is an error naming it.

In CSV, booleans are ``true/false``, ``yes/no``, ``1/0`` (empty: the
default), an empty ``full_name`` is none, an empty ``password`` or
``password_hash`` is absent, and one leading apostrophe before ``=``, ``+``,
``-``, ``@``, tab, CR or another ``'`` is removed in every column except
``password`` (exactly the escape ``-o csv`` adds: vutf_cli.domain.csv_cells).

Every problem is reported with the line it was found on (for JSON, the line
where the object starts); line 1 of a CSV file is its header.
"""

from vutf_cli.services.user_import.formats import FORMATS, decode, detect_format, parse_records
from vutf_cli.services.user_import.hashing import (
    PARALLEL_THRESHOLD,
    ProgressFactory,
    hash_passwords,
)
from vutf_cli.services.user_import.records import (
    EXPORT_ONLY_COLUMNS,
    IMPORT_COLUMNS,
    ImportConflict,
    ImportRejected,
    ImportRow,
    ParsedFile,
    RawRecord,
    RowProblem,
)
from vutf_cli.services.user_import.validation import validate_records

__all__ = [
    "EXPORT_ONLY_COLUMNS",
    "FORMATS",
    "IMPORT_COLUMNS",
    "PARALLEL_THRESHOLD",
    "ImportConflict",
    "ImportRejected",
    "ImportRow",
    "ParsedFile",
    "ProgressFactory",
    "RawRecord",
    "RowProblem",
    "decode",
    "detect_format",
    "hash_passwords",
    "parse_records",
    "validate_records",
]
