"""The root command every command module registers on, and its ``--version``."""

from __future__ import annotations

import inspect
from functools import partial

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from ._options import out

# What help shows in place of Typer's type names (<str>, <list[str]>, <bool>): a flag shows
# nothing, an argument its own name (FILES...), a value the kind of thing to type.
_PLACEHOLDERS = {"str": "TEXT", "int": "N", "int range": "N", "float": "NUMBER", "path": "PATH", "dir": "DIR",
                 "file": "FILE", "datetime": "DATE"}


def _plain(label: str) -> str:
    label = label.strip("<>")
    many = label.startswith("list[")
    label = label.removeprefix("list[").removesuffix("]")
    if "|" not in label:
        label = _PLACEHOLDERS.get(label, label.upper())
    return label + ("..." if many else "")


def _reflow(text: str) -> str:
    """A docstring's paragraphs as single lines, so help wraps them to the terminal; lists and
    indented examples keep their lines."""
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.split("\n")
        if any(line.startswith((" ", "-", "*", "\b")) for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _usage_name(argument: TyperArgument) -> str:
    name = argument.metavar if argument.required else f"[{argument.metavar}]"
    return name + ("..." if argument.nargs != 1 else "")


def _no_type(ctx) -> None:
    return None


def _plain_help(command) -> None:
    if command.help:
        command.help = _reflow(command.help)
    make_help_option = command.get_help_option

    def help_option(ctx):
        option = make_help_option(ctx)
        if option is not None:
            option.display_type_rich = _no_type
        return option

    command.get_help_option = help_option
    for param in command.params:
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = param.name.upper()
            param.display_type_rich = _no_type
            param._usage_display_name = partial(_usage_name, param)  # FILES... rather than {files}...
        elif isinstance(param, TyperOption) and param.is_flag:
            param.display_type_rich = _no_type
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.display_type_rich = lambda ctx, typed=param.display_type: _plain(typed(ctx))  # type: ignore
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


class _Root(TyperGroup):
    """The root group: plain placeholders and reflowed text in every command's help (Typer builds the
    tree anew per invocation, so this runs per invocation too)."""

    def main(self, *args, **kwargs):
        _plain_help(self)
        return super().main(*args, **kwargs)


app = typer.Typer(cls=_Root, help="A payer-policy rules engine for professional claims: scrub, explain, ask "
                  "what-if.", no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"payerpolicy {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """A payer-policy rules engine for professional claims: scrub, explain, ask what-if."""
