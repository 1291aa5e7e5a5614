"""The image build without an engine: the context .dockerignore lets through, the COPYs, the stages' commands.

The build context is reproduced with Docker's own .dockerignore rules, every COPY source is looked up
in it, and the ``requirements`` and ``wheel`` stages are carried out locally from the Dockerfile's own
instructions, so a file left out of the context or a broken stage command fails here, not at
``docker compose build``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from deploy_support import (
    DOCKERFILE,
    REPO,
    apply_copy,
    context_files,
    context_matches,
    copy_sources,
    is_ignored,
    load_dockerignore,
    materialize_context,
    parse_dockerfile,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_dockerignore_rules_follow_docker_semantics(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("# comment\n*\n!keep/\n**/__pycache__\n!keep/**/__pycache__/ok.txt\n/top.txt\n")
    rules = load_dockerignore(ignore)
    assert is_ignored("anything.txt", rules)
    assert is_ignored("deep/dir/file", rules)  # the parent "deep" matches *
    assert not is_ignored("keep/a.py", rules)
    assert not is_ignored("keep/sub/b.py", rules)
    assert is_ignored("keep/__pycache__/a.pyc", rules)
    assert is_ignored("keep/sub/__pycache__/a.pyc", rules)
    assert not is_ignored("keep/sub/__pycache__/ok.txt", rules)  # the last matching rule wins
    assert is_ignored("top.txt", rules)


def test_build_context_holds_the_package_and_no_secrets() -> None:
    files = context_files()
    assert "pyproject.toml" in files and "README.md" in files
    assert any(f.startswith("batt_tasks/") for f in files) and any(f.startswith("producer/") for f in files)
    rules = load_dockerignore()
    for private in (
        ".env",
        ".git/config",
        "tests/conftest.py",
        "results/x.json",
        ".venv/bin/python",
        "batt_tasks/__pycache__/x.cpython-311.pyc",
        "batt_queue.egg-info/PKG-INFO",
        "bench/x.py",
    ):
        assert is_ignored(private, rules), private
    assert not [f for f in files if f.startswith(("tests/", ".git/", "deploy/")) or f == ".env"]


def test_dockerfile_stages_and_copy_sources_exist_in_the_context() -> None:
    df = parse_dockerfile()
    assert df.stages == ["base", "requirements", "wheel", "runtime"]
    files = context_files()
    copies = [i for i in df.instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    for instr in copies:
        assert instr.keyword == "COPY", f"line {instr.line}: use COPY, not ADD"
        sources, _, flags = copy_sources(instr)
        if "from" in flags:
            assert flags["from"] in df.stages, f"line {instr.line}: no stage {flags['from']}"
            continue
        for source in sources:
            assert context_matches(source, files), f"line {instr.line}: {source!r} is not in the build context"


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    runtime = parse_dockerfile().in_stage("runtime")
    keywords = [(i.keyword, i.args) for i in runtime]
    dep_install = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "--requirement" in a)
    wheel_copy = next(n for n, (k, a) in enumerate(keywords) if k == "COPY" and "--from=wheel" in a)
    assert dep_install < wheel_copy
    # the only thing the dependency layer sees is the requirements file
    assert [a for k, a in keywords[:dep_install] if k == "COPY"] == [
        "--from=requirements /requirements/requirements.txt /tmp/requirements.txt"
    ]
    assert all("--no-cache-dir" in a for k, a in keywords if k == "RUN" and "pip install" in a)


def _workdir(stage: str) -> str:
    workdirs = [i.args for i in parse_dockerfile().in_stage(stage) if i.keyword == "WORKDIR"]
    assert len(workdirs) == 1
    return workdirs[0]


def _local_run(instr_args: str, cwd: Path, rewrite: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a RUN instruction's shell command locally (this Python first on PATH), container paths rewritten."""
    cmd = instr_args
    for old, new in rewrite.items():
        cmd = cmd.replace(old, new)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run(["sh", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_requirements_stage_lists_exactly_the_runtime_dependencies(tmp_path: Path) -> None:
    context = tmp_path / "context"
    files = materialize_context(context)
    stage = parse_dockerfile().in_stage("requirements")
    work = tmp_path / "stage"
    work.mkdir()
    assert _workdir("requirements") == "/requirements"
    for instr in stage:
        if instr.keyword == "COPY":
            apply_copy(instr, context, files, work)
        elif instr.keyword == "RUN":
            proc = _local_run(instr.args, work, {})
            assert proc.returncode == 0, proc.stderr
    lines = [x for x in (work / "requirements.txt").read_text().splitlines() if x]
    assert lines == PYPROJECT["project"]["dependencies"]
    test_extra = {re.split(r"[<>=\[ ]", d)[0] for d in PYPROJECT["project"]["optional-dependencies"]["test"]}
    assert not test_extra & {re.split(r"[<>=\[ ]", d)[0] for d in lines}


@pytest.mark.integration
def test_wheel_stage_builds_the_package_from_the_context_alone(tmp_path: Path) -> None:
    """The ``wheel`` stage's COPYs from the filtered context, then a wheel build like its RUN (no network)."""
    context = tmp_path / "context"
    files = materialize_context(context)
    stage = parse_dockerfile().in_stage("wheel")
    src = tmp_path / "src"
    src.mkdir()
    assert _workdir("wheel") == "/src"
    runs = []
    for instr in stage:
        if instr.keyword == "COPY":
            apply_copy(instr, context, files, src)
        elif instr.keyword == "RUN":
            runs.append(instr.args)
    assert len(runs) == 1 and re.match(r"pip wheel .*--no-deps .*--wheel-dir /wheels \.$", runs[0])
    wheels = tmp_path / "wheels"
    # The stage's own command (pip builds in an isolated environment, fetching setuptools from the
    # package index just as `docker build` does), with /wheels pointing into the test's directory.
    proc = _local_run(runs[0], src, {"/wheels": str(wheels)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = wheels.glob("batt_queue-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("batt_tasks/celery.py", "batt_tasks/tasks.py", "batt_tasks/battery/__init__.py", "producer/cli.py"):
        assert module in names, f"{module} missing from the image's wheel"
    assert not [n for n in names if n.startswith("tests/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "batt-submit = producer.cli:entry" in zipfile.ZipFile(wheel).read(entry_points).decode()
    # runtime stage: `pip install --no-deps /tmp/wheels/*.whl` matches exactly this wheel
    install = next(
        i.args for i in parse_dockerfile().in_stage("runtime") if "/tmp/wheels/" in i.args and i.keyword == "RUN"
    )
    pattern = shlex.split(install)[shlex.split(install).index("--no-deps") + 1]
    assert Path(wheel.name).match(Path(pattern).name)


def test_dockerfile_path_is_the_one_compose_builds() -> None:
    assert DOCKERFILE.is_file()
    assert DOCKERFILE.parent.name == "deploy"
