"""The ``benchmark-platform`` command group; each topic module adds its commands to it."""

from __future__ import annotations

import os
import sys

import click

# Exit codes shared by every command.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
TRACEBACKS_ENV = "BENCHMARK_PLATFORM_TRACEBACKS"
UNEXPECTED = "unexpected error (a bug; BENCHMARK_PLATFORM_TRACEBACKS=1 shows where):"


class BadInput(click.ClickException):
    """Bad input on the command line: one line on stderr, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: object = None) -> None:
        click.echo(f"error: {printable(self.format_message())}", err=True)


def printable(message: str) -> str:
    """``message`` with control and other unprintable characters escaped (``\\x1b``): an input echoed in an error
    can neither break the one line nor send escape sequences to the terminal."""
    return "".join(character if character.isprintable() else ascii(character)[1:-1] for character in message)


def _check_arguments(args: list[str]) -> None:
    for position, argument in enumerate(args, start=1):
        if "\x00" in argument:
            raise BadInput(f"argument {position} contains a NUL character")
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(f"argument {position} is not valid UTF-8") from None


class PlatformGroup(click.Group):
    """Usage errors (a missing or invalid option, an unknown command) as one line instead of usage text plus error,
    so that every bad input reads the same: ``error: ...`` and exit code 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra):
        _check_arguments(args)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            raise BadInput(error.format_message()) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            raise BadInput(error.format_message()) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            # The last line of defence: a bug (every input has its own check and message) still reaches the user
            # as one line and exit 1, never a traceback, unless BENCHMARK_PLATFORM_TRACEBACKS=1 asks for it.
            # test_cli_hostile.py fails on this line, so that the harness finds the missing check.
            if ctx.parent is not None or os.environ.get(TRACEBACKS_ENV) == "1":
                raise
            fail(f"{UNEXPECTED} {type(error).__name__}: {error}", EXIT_FAILURE)


PlatformGroup.group_class = PlatformGroup


@click.group(cls=PlatformGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="benchmark-platform")
def main() -> None:
    """LLM inference benchmarking: which model version, GPU, framework and batch size is best, at what cost.

    Data lives in the PostgreSQL named by BENCHMARK_PLATFORM_DATABASE_URL, or in an embedded one under
    BENCHMARK_PLATFORM_HOME (default ./.benchmark_platform).
    """


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print a one-line error to stderr and exit with ``code`` (2 = bad input, nothing written); a message of several
    lines (a pydantic error, a server's reply) is joined into one."""
    one_line = "; ".join(line.strip() for line in str(message).split("\n") if line.strip())
    click.echo(f"error: {printable(one_line)}", err=True)
    sys.exit(code)
