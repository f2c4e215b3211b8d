"""The manage.py commands the README prints work exactly as written in a checkout where `make
run` has run: `make run` leaves var/dev.env behind (seed_demo), so they need no DEBUG=true in
front, and `manage.py help` lists the project's own commands. Production still refuses to start
without its secrets."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
README = (ROOT / "README.md").read_text()
# What a shell in a fresh checkout has: none of the variables `make run` exports.
UNSET = {
    *("DEBUG", "SECRET_KEY", "COHORTSYNC_ENCRYPTION_KEYS", "COHORTSYNC_ALLOW_INSECURE_ENDPOINTS"),
    *("DATABASE_URL", "REDIS_URL", "SITE_URL", "DJANGO_SETTINGS_MODULE"),
}


def readme_command(name: str) -> list[str]:
    """The README's first command line running manage.py `name`, as argv."""
    match = re.search(rf"^\.venv/bin/python manage\.py {name}\b.*$", README, re.MULTILINE)
    assert match, f"the README prints no `.venv/bin/python manage.py {name}` line"
    line = match[0].split("  #")[0]
    return [sys.executable, *shlex.split(line)[1:]]


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory):
    """The environment of a user's shell after `make run` ran in the checkout (var/ is a fresh
    directory here: the test must not touch the developer's own)."""
    var_dir = tmp_path_factory.mktemp("var")
    shell = {k: v for k, v in os.environ.items() if k not in UNSET}
    shell["COHORTSYNC_VAR_DIR"] = str(var_dir)
    # What `make run` runs before the stack, with what it exports (the Makefile's run target).
    make = {**shell, "DEBUG": "true", "COHORTSYNC_ALLOW_INSECURE_ENDPOINTS": "true"}
    for argv in (["migrate", "--noinput"], ["seed_demo"]):
        done = manage(argv, make)
        assert done.returncode == 0, done.stdout + done.stderr
    return shell


def manage(argv, env, stdin=""):
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        start_new_session=True,  # no terminal: getpass reads the password from stdin
    )


def run_as_written(name, env, stdin=""):
    return subprocess.run(
        readme_command(name),
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        start_new_session=True,
    )


def test_help_lists_the_projects_commands(shell_env):
    done = manage(["help"], shell_env)
    assert done.returncode == 0, done.stderr
    for command in ("createuser", "create_api_token", "create_import_key", "runstack"):
        assert command in done.stdout
    assert "only Django core commands are listed" not in done.stdout + done.stderr


def test_the_readmes_user_token_and_key_commands_run_as_written(shell_env):
    password = "a long enough passphrase 9\n"
    created = run_as_written("createuser", shell_env, stdin=password * 2)
    assert created.returncode == 0, created.stderr
    assert "Created alice@example.com with the admin role." in created.stdout
    token = run_as_written("create_api_token", shell_env)
    assert token.returncode == 0, token.stderr
    assert "cs_" in token.stdout
    key = run_as_written("create_import_key", shell_env)
    assert key.returncode == 0, key.stderr
    assert "csik_" in key.stdout
    unlock = run_as_written("unlock_login", shell_env)
    assert unlock.returncode == 0, unlock.stderr


def test_the_development_mark_never_outranks_the_environment(shell_env):
    """Production says DEBUG=false: var/dev.env does not turn development on, and without its
    secrets it still refuses to start."""
    done = manage(["check"], {**shell_env, "DEBUG": "false"})
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr
