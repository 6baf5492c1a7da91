"""The rough edges a new user hit (issue 10, item 5), each as the user met it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from tests.world import ROOT

PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def test_every_bot_subpackage_is_listed_for_packaging() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(ROOT), include=["bot*"]))
    assert found <= listed, sorted(found - listed)


@pytest.mark.slow
def test_demo_works_from_a_non_editable_install_outside_the_repository(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bin_dir = venv / "bin"
    # The dependencies (and `wheel`, to build) come from the test's own environment, added as a
    # plain path: its .pth files (the editable install of the checkout) are not processed.
    purelib = Path(
        subprocess.run(
            [str(bin_dir / "python"), "-c", PURELIB],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (purelib / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("STOCKBOT_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import bot; print(bot.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where, where  # the installed copy, not the checkout
    demo = subprocess.run(
        [str(bin_dir / "stockbot"), "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Demo finished" in demo.stdout
