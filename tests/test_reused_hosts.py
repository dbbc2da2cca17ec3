"""The compiler's answer to "which hosts run more than one command?" (tasker.ir.hosts)."""

from __future__ import annotations

from support import compile_text

from tasker.ir.hosts import reused_hosts


def hosts_of(text: str, validate: bool = True) -> set[str]:
    workflow, diags = compile_text(text, validate=validate)
    assert not diags.has_errors(), diags
    return set(reused_hosts(workflow))


def test_two_tasks_on_one_host_reuse_it_and_a_host_used_once_does_not():
    assert hosts_of("""
        task=0
        hostname=web1
        command=true
        exec=ssh

        task=1
        hostname=web1
        command=true
        exec=ssh

        task=2
        hostname=db1
        command=true
        exec=ssh
        """) == {"web1"}


def test_a_pure_fan_out_reuses_nothing():
    assert hosts_of("""
        task=0
        type=parallel
        hostnames=a,b,c,d
        command=true
        exec=ssh
        """) == set()


def test_a_retrying_block_reuses_its_hosts():
    assert hosts_of("""
        task=0
        type=parallel
        hostnames=a,b
        retry_failed=true
        retry_count=2
        command=true
        exec=ssh
        """) == {"a", "b"}


def test_a_looping_task_reuses_its_host():
    assert hosts_of("""
        task=0
        hostname=web1
        command=true
        next=loop
        loop=3
        """) == {"web1"}


def test_a_jump_back_reuses_the_hosts_of_the_stretch_it_repeats():
    # task validation refuses backward jumps; without it they run
    assert hosts_of(validate=False, text="""
        task=0
        hostname=before
        command=true

        task=1
        hostname=web1
        command=true

        task=2
        hostname=web2
        command=false
        on_failure=1
        """) == {"web1", "web2"}


def test_a_host_only_known_at_run_time_counts_as_used_once():
    assert hosts_of("""
        task=0
        hostname=web1
        command=echo
        arguments=db1

        task=1
        hostname=@0_stdout@
        command=true

        task=2
        hostname=@0_stdout@
        command=true
        """) == set()
