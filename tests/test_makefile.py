"""The Makefile hands the test run what the tests read — the PostgreSQL server (``TEST_DATABASE_URL``) and the
browser's path (``CHROMIUM``) — exported to its recipes, with the defaults the tests fall back to; and installs
Debian's chromium exactly when the file at ``CHROMIUM`` is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.embedding.host import DEFAULT_POSTGRES_URL
from tests.live.harness import DEFAULT_CHROMIUM, ROOT

EXPORTED = ("TEST_DATABASE_URL", "CHROMIUM")
# A target added to the Makefile's own (make -f Makefile -f probe.mk): prints what a recipe's environment holds.
PROBE = "probe:\n" + "".join(f"\t@echo {name}=$${name}\n" for name in EXPORTED)


def make(tmp_path: Path, *args: str, **env: str) -> str:
    assert shutil.which("make"), "the Makefile's tests need GNU make on PATH"
    (tmp_path / "probe.mk").write_text(PROBE)
    unset = (*EXPORTED, "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    environ = {key: value for key, value in os.environ.items() if key not in unset}
    result = subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", "-f", str(tmp_path / "probe.mk"), *args],
        cwd=ROOT,
        env={**environ, "LC_ALL": "C", **env},  # make's messages in English
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_recipes_get_the_defaults_the_tests_fall_back_to(tmp_path: Path) -> None:
    assert make(tmp_path, "probe").splitlines() == [
        f"TEST_DATABASE_URL={DEFAULT_POSTGRES_URL}",
        f"CHROMIUM={DEFAULT_CHROMIUM}",
    ]


@pytest.mark.parametrize("given", ["environment", "command line"])
def test_recipes_get_the_values_the_caller_gives(tmp_path: Path, given: str) -> None:
    values = {"TEST_DATABASE_URL": "postgres://erp@db.internal:6543/likha", "CHROMIUM": "/opt/chromium/chrome"}
    if given == "environment":
        printed = make(tmp_path, "probe", **values)
    else:
        printed = make(tmp_path, "probe", *(f"{name}={value}" for name, value in values.items()))
    assert printed.splitlines() == [f"{name}={value}" for name, value in values.items()]


def test_chromium_is_installed_from_debian_when_its_path_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "chromium"
    planned = make(tmp_path, "-n", f"CHROMIUM={missing}", str(missing)).splitlines()
    assert planned == [
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium",
        f'test -x "{missing}" || {{ echo "Debian\'s chromium package gave no {missing}: set CHROMIUM to the '
        "browser's path.\" >&2; exit 1; }",
    ]


def test_an_existing_chromium_is_left_as_it_is(tmp_path: Path) -> None:
    present = tmp_path / "chromium"
    present.write_text("#!/bin/sh\n")
    present.chmod(0o755)
    assert make(tmp_path, "-n", f"CHROMIUM={present}", str(present)) == f"make: '{present}' is up to date.\n"
