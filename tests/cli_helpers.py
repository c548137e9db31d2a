"""What the CLI tests share: invoking charrnn through click's CliRunner and checking a failure."""

from click.testing import CliRunner

from charrnn.cli import cli


def invoke(args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="charrnn", **kwargs)


def usage_error(command, usage, message):
    """What click writes on stderr for a usage error (exit status 2)."""
    return (f"Usage: charrnn {command} {usage}\nTry 'charrnn {command} --help' for help.\n\n"
            f"Error: {message}\n")


def assert_fails(result, exit_code, stderr):
    """No traceback, the exit status, exactly this on stderr and nothing on stdout."""
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == exit_code, (result.stderr, result.exception)
    assert result.stderr == stderr
    assert result.stdout == ""
