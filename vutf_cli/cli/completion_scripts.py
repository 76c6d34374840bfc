"""Render vutf's command tree as static bash, zsh and fish completion scripts.

The tree comes from :func:`vutf_cli.cli.completion.command_tree`.  Each
script holds it as ``case``/``switch`` tables and walks the words typed so
far itself (the command path, and which options take a value), so a <TAB>
starts no process; only values of kind :attr:`Values.names` run ``vutf
completion names KIND PREFIX`` (stderr discarded).

Quoting: every word put in a script unquoted (command, option and choice
names) must match :data:`_SAFE_WORD`; help texts are single-quoted, escaped
for each shell (zsh shows them, apostrophes included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Shell -> file name, following each shell's convention for completion files
# (bash-completion: the command's name; zsh fpath: `_` + command; fish: `.fish`).
SCRIPT_FILES: dict[str, str] = {"bash": "vutf.bash", "zsh": "_vutf", "fish": "vutf.fish"}

_SAFE_WORD = re.compile(r"[A-Za-z0-9_.@+/-]+")


@dataclass(frozen=True)
class Values:
    """How a value is completed: fixed choices, names from ``vutf``, file names, or not at all."""

    choices: tuple[str, ...] = ()
    names: str | None = None  # the KIND of `vutf completion names KIND`
    files: bool = False

    @property
    def offered(self) -> bool:
        return bool(self.choices or self.names or self.files)


@dataclass(frozen=True)
class OptionSpec:
    names: tuple[str, ...]
    help: str
    values: Values | None  # None: a flag


@dataclass(frozen=True)
class CommandSpec:
    path: tuple[str, ...]  # () for the root
    help: str
    options: tuple[OptionSpec, ...]
    arguments: tuple[Values, ...]
    variadic: bool  # the last argument takes any number of values
    subcommands: tuple[str, ...]

    @property
    def key(self) -> str:
        return " ".join(self.path)


def _word(text: str) -> str:
    if not _SAFE_WORD.fullmatch(text):
        raise ValueError(f"cannot put {text!r} in a completion script unquoted")
    return text


def _quoted(text: str) -> str:
    """POSIX single quotes, for bash and zsh: ' becomes '\\''."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class _Tree:
    root: CommandSpec
    commands: tuple[CommandSpec, ...]  # every command but the root, parents first

    @classmethod
    def of(cls, specs: Sequence[CommandSpec]) -> _Tree:
        for spec in specs:
            for word in (*spec.path, *(n for o in spec.options for n in o.names)):
                _word(word)
        return cls(root=specs[0], commands=tuple(specs[1:]))

    @property
    def everything(self) -> tuple[CommandSpec, ...]:
        return (self.root, *self.commands)

    def children(self, spec: CommandSpec) -> list[CommandSpec]:
        return [sub for sub in self.commands if sub.path[:-1] == spec.path]

    def own_options(self, spec: CommandSpec) -> list[OptionSpec]:
        """The options of ``spec`` that are not global ones (those are offered everywhere)."""
        taken = {name for option in self.root.options for name in option.names}
        return [o for o in spec.options if not taken.intersection(o.names)]

    def value_names(self, spec: CommandSpec) -> list[str]:
        options = self.root.options if spec is self.root else self.own_options(spec)
        return [name for o in options if o.values is not None for name in o.names]

    def offering(self, spec: CommandSpec) -> list[tuple[OptionSpec, Values]]:
        """The options of ``spec`` (the global ones for the root) whose values are offered."""
        options = self.root.options if spec is self.root else self.own_options(spec)
        return [(o, o.values) for o in options if o.values is not None and o.values.offered]

    def arguments(self) -> Iterable[tuple[CommandSpec, str, Values]]:
        """(command, position "0", "1"... or "*" for the variadic last one, values)."""
        for spec in self.commands:
            for index, values in enumerate(spec.arguments):
                last = index == len(spec.arguments) - 1
                if values.offered:
                    yield spec, "*" if last and spec.variadic else str(index), values


HEADER = """\
{comment} {shell} completion for vutf, generated from its command tree by
{comment}   python -m vutf_cli.cli.completion_files --write completions/
{comment} (the same as `vutf completion {shell}`): do not edit.  Completing starts
{comment} no process, except `vutf completion names` for usernames and key prefixes.
"""


def render(shell: str, specs: Sequence[CommandSpec]) -> str:
    tree = _Tree.of(specs)
    renderers = {"bash": _bash, "zsh": _zsh, "fish": _fish}
    if shell not in renderers:
        raise ValueError(f"unsupported shell {shell!r}; expected one of {sorted(SCRIPT_FILES)}")
    header = HEADER.format(comment="#", shell=shell)
    return renderers[shell](tree).replace("@HEADER@\n", header)


def _fill(template: str, **tables: Iterable[str]) -> str:
    for name, lines in tables.items():
        template = template.replace(f"@{name}@", "\n".join(lines))
    return template


def _cases(entries: Iterable[tuple[str, str]]) -> list[str]:
    """``case`` branches, the same syntax in bash and zsh."""
    return [f"        {pattern}) {action} ;;" for pattern, action in entries]


# -- bash and zsh ----------------------------------------------------------------------
def _value_action(values: Values, shell: str) -> str:
    if values.names is not None:
        return (
            f'_vutf_names {values.names} "$3"' if shell == "bash" else f"_vutf_names {values.names}"
        )
    if values.files:
        return '_vutf_files "$3"' if shell == "bash" else "_files"
    words = " ".join(_word(choice) for choice in values.choices)
    return f'_vutf_choices "$3" {words}' if shell == "bash" else f"compadd -- {words}"


def _posix_tables(tree: _Tree, shell: str) -> dict[str, list[str]]:
    """The tables both bash and zsh scripts hold (zsh's lists carry descriptions)."""

    def entry(name: str, help_text: str) -> str:
        if shell == "bash":
            return name
        # _describe reads "name:description".
        return _quoted(f"{name}:{help_text}" if help_text else name)

    def listing(entries: Iterable[str]) -> str:
        items = " ".join(entries)
        return f"_vutf_words='{items}'" if shell == "bash" else f"reply=({items})"

    commands = [
        (_quoted(spec.key), listing(entry(sub.path[-1], sub.help) for sub in tree.children(spec)))
        for spec in tree.everything
        if spec.subcommands
    ]
    options = [
        (
            _quoted(spec.key),
            listing(entry(n, o.help) for o in tree.own_options(spec) for n in o.names),
        )
        for spec in tree.commands
        if tree.own_options(spec)
    ]
    takes_value = [
        ("|".join(_quoted(f"{spec.key} {name}") for name in tree.value_names(spec)), "return 0")
        for spec in tree.commands
        if tree.value_names(spec)
    ]
    values = [
        ("|".join(_quoted(f"{spec.key} {name}") for name in option.names),
         f"{_value_action(values, shell)}; return")
        for spec in tree.commands
        for option, values in tree.offering(spec)
    ]  # fmt: skip
    global_values = [
        ("|".join(option.names), _value_action(values, shell))
        for option, values in tree.offering(tree.root)
    ]
    arguments = [
        (_quoted(f"{spec.key} ") + "*" if position == "*" else _quoted(f"{spec.key} {position}"),
         _value_action(values, shell))
        for spec, position, values in tree.arguments()
    ]  # fmt: skip
    return {
        "COMMANDS": _cases(commands),
        "OPTIONS": _cases(options),
        "GLOBALS": [" ".join(entry(n, o.help) for o in tree.root.options for n in o.names)],
        "TAKES_VALUE": _cases(takes_value),
        "GLOBAL_TAKES_VALUE": ["|".join(tree.value_names(tree.root))],
        "VALUES": _cases(values),
        "GLOBAL_VALUES": _cases(global_values),
        "ARGUMENTS": _cases(arguments),
    }


def _bash(tree: _Tree) -> str:
    return _fill(BASH_TEMPLATE, **_posix_tables(tree, "bash"))


def _zsh(tree: _Tree) -> str:
    return _fill(ZSH_TEMPLATE, **_posix_tables(tree, "zsh"))


# -- fish ------------------------------------------------------------------------------
def _fish_values(values: Values, *, option: bool) -> str:
    if values.names is not None:
        return f"-x -a '(__vutf_names {values.names})'"
    if values.files:
        return "-r -F" if option else "-F"
    if values.choices:
        return "-x -a " + _fish_quoted(" ".join(_word(c) for c in values.choices))
    return "-x" if option else ""


def _fish_option(option: OptionSpec) -> str:
    flags = [
        f"-l {name[2:]}" if name.startswith("--") else f"-s {name[1:]}" if len(name) == 2
        else f"-o {name[1:]}"
        for name in option.names
    ]  # fmt: skip
    if option.values is not None:
        flags.append(_fish_values(option.values, option=True))
    if option.help:
        flags.append(f"-d {_fish_quoted(option.help)}")
    return " ".join(flags)


def _fish(tree: _Tree) -> str:
    # Command names are safe words (checked), so double quotes suffice inside -n '...'.
    takes_value = [
        "        case " + " ".join(_quoted(f"{spec.key} {n}") for n in tree.value_names(spec))
        + "\n            return 0"
        for spec in tree.commands
        if tree.value_names(spec)
    ]  # fmt: skip
    commands = [
        f"        case {_quoted(spec.key)}\n            printf '%s\\n' {' '.join(spec.subcommands)}"
        for spec in tree.everything
        if spec.subcommands
    ]
    completions = [f"complete -c vutf {_fish_option(option)}" for option in tree.root.options]
    for spec in tree.everything:
        completions.append(f"\n# vutf {spec.key}".rstrip())
        for sub in tree.children(spec):
            completions.append(
                f"complete -c vutf -n '__vutf_at \"{spec.key}\" 0' -a {sub.path[-1]}"
                f" -d {_fish_quoted(sub.help)}"
            )
        if spec.path:
            for option in tree.own_options(spec):
                at = f"-n '__vutf_at \"{spec.key}\"'"
                completions.append(f"complete -c vutf {at} {_fish_option(option)}")
        for argument_of, position, values in tree.arguments():
            if argument_of is spec:
                at = f'-n \'__vutf_at "{spec.key}" "{position}"\''
                completions.append(f"complete -c vutf {at} {_fish_values(values, option=False)}")
    return _fill(
        FISH_TEMPLATE,
        GLOBAL_TAKES_VALUE=[" ".join(tree.value_names(tree.root))],
        TAKES_VALUE=takes_value,
        COMMANDS=commands,
        COMPLETIONS=completions,
    )


BASH_TEMPLATE = r"""@HEADER@
# Install: vutf completion bash > ~/.local/share/bash-completion/completions/vutf

_vutf_names() {  # KIND PREFIX: the only completion that runs vutf
    mapfile -t COMPREPLY < <(command vutf completion names "$1" "$2" 2>/dev/null)
}

_vutf_files() {  # PREFIX
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

_vutf_choices() {  # PREFIX WORD...
    local prefix=$1
    shift
    mapfile -t COMPREPLY < <(compgen -W "$*" -- "$prefix")
}

_vutf_commands() {  # PATH: sets _vutf_words to its subcommands
    case $1 in
@COMMANDS@
        *) _vutf_words='' ;;
    esac
}

_vutf_options() {  # PATH: sets _vutf_words to its own options and the global ones
    case $1 in
@OPTIONS@
        *) _vutf_words='' ;;
    esac
    _vutf_words+=' @GLOBALS@'
}

_vutf_takes_value() {  # PATH OPTION
    case "$1 $2" in
@TAKES_VALUE@
    esac
    case $2 in
        @GLOBAL_TAKES_VALUE@) return 0 ;;
    esac
    return 1
}

_vutf_value() {  # PATH OPTION PREFIX: the candidates for the option's value
    case "$1 $2" in
@VALUES@
    esac
    case $2 in
@GLOBAL_VALUES@
    esac
}

_vutf_argument() {  # PATH POSITION PREFIX
    case "$1 $2" in
@ARGUMENTS@
    esac
}

_vutf() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmdpath='' word option='' expect='' rest='' nargs=0 i
    local _vutf_words
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ -n $expect ]]; then
            # bash splits --option=value at '=': skip the '=' too.
            [[ $word == = ]] || expect=''
            continue
        fi
        if [[ -z $rest && $word == -- ]]; then rest=1; continue; fi
        if [[ -z $rest && $word == -* ]]; then
            if _vutf_takes_value "$cmdpath" "$word"; then expect=1; option=$word; fi
            continue
        fi
        _vutf_commands "$cmdpath"
        if [[ -z $rest && $nargs == 0 && " $_vutf_words " == *" $word "* ]]; then
            cmdpath=${cmdpath:+$cmdpath }$word
        else
            ((nargs++))
        fi
    done
    if [[ -n $expect ]]; then
        [[ $cur == = ]] && cur=''
        _vutf_value "$cmdpath" "$option" "$cur"
    elif [[ -z $rest && $cur == -* ]]; then
        _vutf_options "$cmdpath"
        _vutf_choices "$cur" $_vutf_words
    else
        _vutf_commands "$cmdpath"
        if [[ -n $_vutf_words && $nargs == 0 ]]; then
            _vutf_choices "$cur" $_vutf_words
        else
            _vutf_argument "$cmdpath" "$nargs" "$cur"
        fi
    fi
    return 0
}

complete -F _vutf vutf
"""

# `path` is zsh's array tied to PATH: hence cmdpath.
ZSH_TEMPLATE = r"""#compdef vutf
@HEADER@
# Install: vutf completion zsh > ~/.zfunc/_vutf, with fpath=(~/.zfunc $fpath)
# before compinit in ~/.zshrc (or source this file after compinit).

_vutf_names() {  # KIND: the only completion that runs vutf
    local -a found
    found=(${(f)"$(command vutf completion names $1 "$PREFIX" 2>/dev/null)"})
    compadd -a found
}

_vutf_commands() {  # PATH: sets reply to its subcommands, as name:description
    case $1 in
@COMMANDS@
        *) reply=() ;;
    esac
}

_vutf_options() {  # PATH: sets reply to its own options and the global ones
    case $1 in
@OPTIONS@
        *) reply=() ;;
    esac
    reply+=(@GLOBALS@)
}

_vutf_takes_value() {  # PATH OPTION
    case "$1 $2" in
@TAKES_VALUE@
    esac
    case $2 in
        @GLOBAL_TAKES_VALUE@) return 0 ;;
    esac
    return 1
}

_vutf_value() {  # PATH OPTION
    case "$1 $2" in
@VALUES@
    esac
    case $2 in
@GLOBAL_VALUES@
        *) _message value ;;
    esac
}

_vutf_argument() {  # PATH POSITION
    case "$1 $2" in
@ARGUMENTS@
    esac
}

_vutf() {
    local cur=${words[CURRENT]} cmdpath='' word option='' expect='' rest='' nargs=0 i
    local -a reply names
    for (( i = 2; i < CURRENT; i++ )); do
        word=${words[i]}
        if [[ -n $expect ]]; then expect=''; continue; fi
        if [[ -z $rest && $word == -- ]]; then rest=1; continue; fi
        if [[ -z $rest && $word == -* ]]; then
            if [[ $word != *=* ]] && _vutf_takes_value "$cmdpath" "$word"; then
                expect=1; option=$word
            fi
            continue
        fi
        _vutf_commands "$cmdpath"
        names=(${reply%%:*})
        if [[ -z $rest && $nargs == 0 ]] && (( ${names[(Ie)$word]} )); then
            cmdpath=${cmdpath:+$cmdpath }$word
        else
            (( nargs++ ))
        fi
    done
    if [[ -n $expect ]]; then
        _vutf_value "$cmdpath" "$option"
    elif [[ -z $rest && $cur == --*=* ]] && _vutf_takes_value "$cmdpath" "${cur%%=*}"; then
        compset -P '*='
        _vutf_value "$cmdpath" "${cur%%=*}"
    elif [[ -z $rest && $cur == -* ]]; then
        _vutf_options "$cmdpath"
        _describe -t options option reply
    else
        _vutf_commands "$cmdpath"
        if (( ${#reply} )) && [[ $nargs == 0 ]]; then
            _describe -t commands command reply
        else
            _vutf_argument "$cmdpath" "$nargs"
        fi
    fi
}

# Autoloaded from $fpath, this file is the body of _vutf; sourced, it registers it.
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _vutf "$@"
else
    compdef _vutf vutf
fi
"""

FISH_TEMPLATE = r"""@HEADER@
# Install: vutf completion fish > ~/.config/fish/completions/vutf.fish

function __vutf_takes_value --argument-names cmdpath option
    switch $option
        case @GLOBAL_TAKES_VALUE@
            return 0
    end
    switch "$cmdpath $option"
@TAKES_VALUE@
    end
    return 1
end

function __vutf_commands --argument-names cmdpath
    switch $cmdpath
@COMMANDS@
    end
end

# Prints the command path and the number of arguments before the cursor.
function __vutf_state
    set -l cmdpath ''
    set -l nargs 0
    set -l expect 0
    set -l rest 0
    for word in (commandline -opc)[2..-1]
        if test $expect = 1
            set expect 0
        else if test $rest = 0; and test "$word" = --
            set rest 1
        else if test $rest = 0; and string match -q -- '-*' $word
            if not string match -q -- '*=*' $word; and __vutf_takes_value "$cmdpath" $word
                set expect 1
            end
        else if test $nargs = 0; and contains -- $word (__vutf_commands "$cmdpath")
            set cmdpath (string join ' ' -- $cmdpath $word | string trim)
        else
            set nargs (math $nargs + 1)
        end
    end
    printf '%s\n' "$cmdpath" $nargs
end

# True at command PATH (and at argument POSITION; '*': any).
function __vutf_at --argument-names want position
    set -l state (__vutf_state)
    test "$state[1]" = "$want"; or return 1
    test -z "$position"; or test "$position" = '*'; or test "$state[2]" = "$position"
end

# The only completion that runs vutf.
function __vutf_names --argument-names kind
    set -l prefix (commandline -ct | string replace -r -- '^-[^=]*=' '')
    command vutf completion names $kind "$prefix" 2>/dev/null
end

# No file names unless an option or argument takes a file.
complete -c vutf -f

# Global options: after any subcommand too.
@COMPLETIONS@
"""
