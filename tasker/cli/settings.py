"""The merged settings of one run: what every phase of a run reads.

``Settings`` has one attribute per option of the option table (flags False,
values None until set), the task file's text and bytes, and the switches
derived from the skip flags.  It is filled by ``tasker.cli.main`` (command line
over file header over defaults) and read by the phases in ``tasker.cli.run``,
``hostcheck`` and ``recovery``; it imports nothing from them.
"""

from __future__ import annotations

from tasker.cli.options import FLAG_DESTS, OUTPUT_JSON_AUTO, VALUE_DESTS


class Settings:
    """The merged settings of one run (command line over file header over defaults)."""

    def __init__(self) -> None:
        self.task_file = ""
        for name in FLAG_DESTS:
            setattr(self, name, False)
        for name in VALUE_DESTS:
            setattr(self, name, None)
        self.log_level = "INFO"
        self.file_args: list[str] = []
        self.file_warnings: list[str] = []
        self.cli_args: list[str] = []
        self.environ: dict[str, str] = {}
        self.text = ""                     # the task file, decoded
        self.content = b""                 # the task file's bytes

    def effective(self) -> dict[str, object]:
        """The settings that are on or set (for --show-effective-args)."""
        out: dict[str, object] = {}
        for name in (*FLAG_DESTS, *VALUE_DESTS):
            value = getattr(self, name)
            if value not in (False, None, ""):
                out[name] = "(auto)" if value == OUTPUT_JSON_AUTO else value
        return out

    # Derived switches
    @property
    def validate_tasks(self) -> bool:
        return not (self.skip_task_validation or self.skip_validation)

    @property
    def validate_hosts(self) -> bool:
        return not (self.skip_host_validation or self.skip_validation)

    @property
    def validate_security(self) -> bool:
        return not (self.skip_security_validation or self.skip_validation)

    @property
    def validate_commands(self) -> bool:
        return not (self.skip_command_validation or self.skip_validation)

    @property
    def recovery(self) -> bool:
        return bool(self.auto_recovery or self.output_json)
