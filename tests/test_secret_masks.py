"""Secret values are masked where tasker writes them today.

Globals whose names mark them as secrets (prefixes SECRET_, MASK_, HIDE_, PASSWORD_,
TOKEN_; suffixes _PASSWORD, _TOKEN, _SECRET, _KEY; any letter case) are shown as
``<masked len=N>`` in the command line of the "Executing" and "[DRY RUN]" lines,
on the console and in the log file, and in the global-variable snapshot of the
--instance-check lock file.
"""

from __future__ import annotations

import json

import pytest

from tasker.report.log import Log
from tasker.report.masking import Masker

SECRETS = {
    "SECRET_A": "s3cr3t-alpha", "MASK_B": "s3cr3t-bravo", "HIDE_C": "s3cr3t-charlie",
    "PASSWORD_D": "s3cr3t-delta", "TOKEN_E": "s3cr3t-echo", "DB_PASSWORD": "s3cr3t-foxtrot",
    "API_TOKEN": "s3cr3t-golf", "APP_SECRET": "s3cr3t-hotel", "SSH_KEY": "s3cr3t-india",
    "lower_token": "s3cr3t-juliet",
}
PLAIN = {"USER_NAME": "plain-kilo", "KEYRING": "plain-lima", "PASSWORDLESS": "plain-mike"}


def flow(tasker, extra_task: str = ""):
    names = {**SECRETS, **PLAIN}
    header = "".join(f"{name}={value}\n" for name, value in names.items())
    arguments = " ".join(f"@{name}@" for name in names)
    # `true` ignores its arguments: nothing but tasker's own lines can carry the values.
    return tasker.write(f"{header}\ntask=0\nhostname=localhost\ncommand=true\narguments={arguments}\nexec=local\n\n"
                        + extra_task)


def masked_line(text: str, marker: str) -> str:
    lines = [line for line in text.splitlines() if marker in line]
    assert len(lines) == 1, text
    return lines[0]


def check_line(line: str) -> None:
    for value in SECRETS.values():
        assert value not in line
        assert f"<masked len={len(value)}>" in line
    for value in PLAIN.values():
        assert value in line


def test_the_executing_line_masks_secrets_on_the_console_and_in_the_log_file(tasker):
    r = tasker.run(flow(tasker), "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    check_line(masked_line(r.stdout, "Executing"))
    logs = list((tasker.home / "TASKER" / "log").glob("*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    check_line(masked_line(text, "Executing"))
    for value in SECRETS.values():
        assert value not in text + r.stdout + r.stderr


def test_the_dry_run_line_masks_secrets(tasker):
    r = tasker.run(flow(tasker))
    assert r.returncode == 0, r.stdout + r.stderr
    check_line(masked_line(r.stdout, "[DRY RUN]"))


def test_the_instance_lock_snapshot_masks_secrets(tasker):
    # The second task copies the lock file while the run holds it.
    copy = tasker.tmp / "lock-copy"
    locks = tasker.home / "TASKER" / "locks"
    path = flow(tasker, f"task=1\nhostname=localhost\ncommand=cp\narguments=-r {locks} {copy}\nexec=local\n")
    r = tasker.run(path, "-r", "--instance-check")
    assert r.returncode == 0, r.stdout + r.stderr
    [lock] = list(copy.iterdir())
    snapshot = json.loads(lock.read_text())["global_vars_snapshot"]
    assert snapshot == {**{n: f"<masked len={len(v)}>" for n, v in SECRETS.items()}, **PLAIN}


@pytest.mark.parametrize("text,expected", [
    ("run pw123 now", "run <masked len=5> now"),
    ("pw123pw123", "<masked len=5><masked len=5>"),
    ("nothing here", "nothing here"),
])
def test_log_mask_replaces_every_occurrence(text, expected):
    log = Log("INFO")
    log.masker = Masker(["pw123"])
    assert log.mask(text) == expected
