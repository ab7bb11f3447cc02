"""`report(*args)`: normlab-report's command line run in the test's process (its main, with
stdout and stderr captured), so that a test of what the user types does not pay a subprocess's
import of torch."""

from dataclasses import dataclass

import pytest

from normlab.report.__main__ import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def report(capsys):
    def run(*args) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run
