"""The Typer application: the root group, its global options, and the command groups.

Only built when a request needs Typer: :func:`vutf_cli.cli.app.main` answers
``vutf --version`` and shell completion before importing this module.  The
command groups (``db``, ``users``, ``keys``, ``audit``) are imported and built
on first use, so ``vutf users list`` pays for the ``users`` group alone;
``vutf --help`` and a mistyped group name (for "Did you mean ...?") still see
all of them.

No ``from __future__ import annotations`` here: Typer reads the root
callback's annotations at every start-up, and string annotations would be
compiled and evaluated there, twice each.
"""

import copy
import functools
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Annotated, Any

import typer
from typer import _click as click
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name, get_group_from_info
from typer.models import CommandInfo, DefaultPlaceholder, TyperInfo

from vutf_cli import __version__
from vutf_cli.cli.app import (
    EPILOG,
    LAST_CONTEXT,
    PROG_NAME,
    PipeClosed,
    hoist_global_options,
    run_guarded,
)
from vutf_cli.cli.coercion import install_fast_coercion
from vutf_cli.cli.context import AppContext, GlobalOptions
from vutf_cli.errors import InvalidInput

# The command groups, in the order `vutf --help` lists them: name -> module.
GROUP_MODULES: dict[str, str] = {
    "db": "vutf_cli.cli.db",
    "users": "vutf_cli.cli.users",
    "keys": "vutf_cli.cli.keys",
    "audit": "vutf_cli.cli.audit",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's ``commands`` mapping whose entries are built when first looked up.

    Iterating (names, ``keys()``, ``in``, ``len``) builds nothing; reading an
    entry builds that command or group only, once.
    """

    def __init__(
        self,
        built: MutableMapping[str, click.Command],
        loaders: Mapping[str, Callable[[], click.Command]],
    ) -> None:
        self._built: dict[str, click.Command] = dict(built)
        self._loaders = dict(loaders)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            loader = self._loaders.get(name)
            if loader is None:
                raise KeyError(name)
            self._built[name] = loader()
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        found = name in self._built or name in self._loaders
        self._built.pop(name, None)
        self._loaders.pop(name, None)
        if not found:
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self._loaders
        yield from (name for name in self._built if name not in self._loaders)

    def __len__(self) -> int:
        return len(self._loaders.keys() | self._built.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._loaders or name in self._built


class LazyTyperGroup(TyperGroup):
    """A group whose commands are built on first use: listing their names builds none."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)


def _typer_settings() -> dict[str, Any]:
    # What app.add_typer() hands down to every group and command it builds.
    return {
        "pretty_exceptions_short": app.pretty_exceptions_short,
        "rich_markup_mode": app.rich_markup_mode,
    }


def _build_command(info: CommandInfo) -> click.Command:
    return get_command_from_info(info, **_typer_settings())


def _unset(value: object) -> bool:
    # Typer marks a setting nobody gave with a DefaultPlaceholder.
    return isinstance(value, DefaultPlaceholder)


def _default_group_class(sub_app: typer.Typer) -> bool:
    callback = sub_app.registered_callback
    return _unset(sub_app.info.cls) and (callback is None or _unset(callback.cls))


def build_group(name: str) -> click.Command:
    """The click group for ``vutf NAME``, as ``app.add_typer`` would have built it.

    Its commands are built on first use too (``vutf users list`` builds one
    command, not thirteen); ``tests/cli/test_lazy_commands.py`` checks that
    every help page equals the one of an eagerly built application.
    """
    # __import__ rather than importlib: -X importtime (and the start-up tests) see it.
    module = __import__(GROUP_MODULES[name], fromlist=["app"])
    sub_app: typer.Typer = module.app
    settings = {**_typer_settings(), "suggest_commands": app.suggest_commands}
    if sub_app.registered_groups or not _default_group_class(sub_app):
        return get_group_from_info(TyperInfo(sub_app, name=name), **settings)
    # The group itself from a copy without commands, then its commands as loaders.
    shell = copy.copy(sub_app)
    shell.registered_commands = []
    group = get_group_from_info(TyperInfo(shell, name=name, cls=LazyTyperGroup), **settings)
    loaders: dict[str, Callable[[], click.Command]] = {}
    for info in sub_app.registered_commands:
        assert info.callback is not None
        command_name = info.name or get_command_name(info.callback.__name__)
        if command_name:
            loaders[command_name] = functools.partial(_build_command, info)
    group.commands = LazyCommands(group.commands, loaders)
    return group


class VutfGroup(LazyTyperGroup):
    """Root group: lazy command groups, global options hoisted, every error mapped."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        loaders = {name: functools.partial(build_group, name) for name in GROUP_MODULES}
        self.commands = LazyCommands(self.commands, loaders)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise PipeClosed() from exc

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = hoist_global_options(list(sys.argv[1:] if args is None else args))
        extra.setdefault("obj", None)

        def parse_and_run(arguments: list[str]) -> Any:
            return super(VutfGroup, self).main(
                args=arguments,
                prog_name=prog_name or PROG_NAME,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )

        code = run_guarded(parse_and_run, argv)
        if standalone_mode:
            sys.exit(code)
        return code


# Option values are coerced without pydantic whenever that gives the same result.
install_fast_coercion()

app = typer.Typer(
    name=PROG_NAME,
    cls=VutfGroup,
    help="Administer the ViolentUTF identity and audit store: users, API keys, audit log, schema.",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"vutf {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL (env VUTF_DATABASE_URL). Default: SQLite file in the data dir.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Output format: table, json, jsonl, csv (env VUTF_OUTPUT)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Who is acting, for the audit log (env VUTF_ACTOR)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Assume yes to confirmations.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Only data and errors.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours (NO_COLOR is honoured too).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Administer the ViolentUTF identity and audit store.

    \b
    Examples:
      vutf users create alice --email alice@example.com
      vutf users list --json | jq -r '.[].username'
      vutf db upgrade
    """
    if as_json and output not in (None, "json"):
        raise InvalidInput("--json conflicts with -o " + str(output))
    options = GlobalOptions(
        database_url=database_url,
        output="json" if as_json else output,
        actor=actor,
        yes=yes,
        quiet=quiet,
        no_color=no_color,
        debug=debug,
    )
    app_ctx = AppContext(options)
    ctx.obj = app_ctx
    LAST_CONTEXT["app"] = app_ctx
    # Validate settings now so a bad config fails before any work.
    _ = app_ctx.settings


command = typer.main.get_command(app)

__all__ = [
    "GROUP_MODULES",
    "LazyCommands",
    "LazyTyperGroup",
    "VutfGroup",
    "app",
    "build_group",
    "command",
]
