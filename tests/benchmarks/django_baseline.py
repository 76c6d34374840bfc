"""A minimal Django project, the baseline an operator knows.

``vutf --help`` is compared with ``python manage.py check`` of a project with
Django's default apps (admin, auth, contenttypes, sessions, messages,
staticfiles) on SQLite: both are an administration command line that loads
its framework and answers without touching data.  ``vutf users create`` is
compared with ``manage.py createsuperuser --noinput`` and ``vutf db upgrade``
of a fresh SQLite file with ``manage.py migrate``; the project hashes
passwords with argon2 at the parameters of vutf's profile the benchmark
runs with (:func:`make_project`'s ``argon2_profile``), so both sides do the
same hashing work.  Django comes with the ``test`` extra; without it these
cases are skipped with a note.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SETTINGS = """\
SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = []
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "benchsite.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB_PATH}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
USE_TZ = True
PASSWORD_HASHERS = ["benchsite.hashers.BenchArgon2PasswordHasher"]
"""

# Django's own argon2 hasher (argon2-cffi, type ID, 16-byte salt, 32-byte
# hash: as vutf) with vutf's time/memory/parallelism.
HASHERS = """\
from django.contrib.auth.hashers import Argon2PasswordHasher


class BenchArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = TIME_COST
    memory_cost = MEMORY_COST
    parallelism = PARALLELISM
"""

URLS = """\
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def django_available() -> bool:
    return importlib.util.find_spec("django") is not None


def database_path(directory: Path) -> Path:
    """The SQLite file of the project in ``directory``."""
    return directory / "db.sqlite3"


def make_project(directory: Path, *, argon2_profile: str = "test") -> Path:
    """Write the project into ``directory``; return the path of its ``manage.py``.

    Its passwords are hashed with the parameters of vutf's ``argon2_profile``.
    """
    from vutf_cli.security.passwords import PROFILES

    parameters = PROFILES[argon2_profile]
    package = directory / "benchsite"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    settings = SETTINGS.replace("DB_PATH", repr(str(database_path(directory))))
    (package / "settings.py").write_text(settings, encoding="utf-8")
    hashers = (
        HASHERS.replace("TIME_COST", str(parameters.time_cost))
        .replace("MEMORY_COST", str(parameters.memory_cost))
        .replace("PARALLELISM", str(parameters.parallelism))
    )
    (package / "hashers.py").write_text(hashers, encoding="utf-8")
    (package / "urls.py").write_text(URLS, encoding="utf-8")
    manage = directory / "manage.py"
    manage.write_text(MANAGE, encoding="utf-8")
    return manage
