"""The production files, checked without docker: docker-compose.yml, .env.example, the Dockerfile,
.dockerignore and the lock file.

The settings the app reads are derived from app/config.py (every name it looks up in the
environment), never copied here, so a setting added there must also reach .env.example and every
tally process in the compose file, or these tests say which one is missing. Variables the code
reads elsewhere (`os.environ` outside app/config.py, e.g. prometheus-client's
PROMETHEUS_MULTIPROC_DIR) are set by the compose file for the processes that need them, not by
the operator.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask.cli import FlaskGroup
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "app" / "config.py"
CODE = [
    ROOT / "wsgi.py",
    *(p for package in ("app", "domain", "projections", "workers") for p in (ROOT / package).rglob("*.py")),
]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"

TALLY_SERVICES = ("migrate", "web", "worker", "scheduler")
SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")


# ---- the settings the app reads, from app/config.py --------------------------------------------


def _is_environment(node: ast.AST, names: tuple[str, ...] = ("env", "environ")) -> bool:
    """`env`, `environ` or `os.environ`: the mapping settings are read from."""
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _setting_name(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING_NAME.match(node.value):
        return {node.value}
    return set()


def names_looked_up(source: str, mappings: tuple[str, ...] = ("env", "environ")) -> set[str]:
    """Every literal name looked up in the environment: `env.get("X")`, `env["X"]`, `"X" in env`,
    `os.getenv("X")`, and a helper given the environment and then the name (`_int(env, "X", ...)`).
    `mappings` are the local names that stand for the environment (only `os.environ` outside
    app/config.py)."""
    names: set[str] = set()

    def is_env(node: ast.AST) -> bool:
        return _is_environment(node, mappings)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            method = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if method in ("get", "pop") and node.args and is_env(getattr(func, "value", func)):
                names |= _setting_name(node.args[0])
            if method == "getenv" and node.args:
                names |= _setting_name(node.args[0])
            for arg, following in zip(node.args, node.args[1:], strict=False):
                if is_env(arg):
                    names |= _setting_name(following)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if is_env(node.value):
                names |= _setting_name(node.slice)
        elif isinstance(node, ast.Compare) and any(is_env(c) for c in node.comparators):
            names |= _setting_name(node.left)
    return names


class RecordingEnvironment(dict[str, str]):
    """An empty environment that remembers every name it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def settings_read_by_app() -> set[str]:
    """The operator's settings: what app/config.py reads."""
    return names_looked_up(CONFIG.read_text())


def variables_read_elsewhere() -> set[str]:
    """What the rest of the code reads from `os.environ` itself."""
    found: set[str] = set()
    for path in CODE:
        if path != CONFIG:
            found |= names_looked_up(path.read_text(), mappings=())
    return found - settings_read_by_app()


def test_the_settings_are_derived_from_app_config() -> None:
    found = settings_read_by_app()
    assert {"DATABASE_URL", "REDIS_URL", "PAYMENT_PROVIDER", "PLATFORM_FEE_BPS"} <= found
    # What Settings.from_env really asks for at start-up, the scan must have found too.
    env = RecordingEnvironment()
    Settings.from_env(env)
    assert env.asked - found == set(), "app/config.py reads these in a way the scan does not see"


def test_the_scan_sees_each_way_of_reading_a_setting() -> None:
    source = (
        'a = env.get("A_ONE", "DEFAULT_NOT_A_SETTING")\n'
        'b = env["B_TWO"]\n'
        'c = "C_THREE" in env\n'
        'd = _int(env, "D_FOUR", 1, 0, 9)\n'
        'e = os.environ.get("E_FIVE")\n'
        'f = other.get("NOT_FROM_ENV")\n'
        'env["WRITTEN_NOT_READ"] = "1"\n'
        'g = os.getenv("G_SEVEN")\n'
        'h = os.environ["H_EIGHT"]\n'
    )
    everything = {"A_ONE", "B_TWO", "C_THREE", "D_FOUR", "E_FIVE", "G_SEVEN", "H_EIGHT"}
    assert names_looked_up(source) == everything
    assert names_looked_up(source, mappings=()) == {"E_FIVE", "G_SEVEN", "H_EIGHT"}


def test_an_empty_value_means_the_default() -> None:
    """Compose passes every setting, empty when .env leaves it empty: that must mean the default."""
    empty = {name: "" for name in settings_read_by_app()}
    assert Settings.from_env(empty) == Settings.from_env({})


# ---- docker-compose.yml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())  # resolves the `<<: *tally` merges
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment_names(service: Mapping[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return set(env)
    return {entry.split("=", 1)[0] for entry in env}


def env_file_paths(service: Mapping[str, Any]) -> Iterator[Path]:
    entries = service.get("env_file") or []
    for entry in [entries] if isinstance(entries, str | dict) else entries:
        path = entry["path"] if isinstance(entry, dict) else entry
        yield ROOT / path


def env_example_names(path: Path = ENV_EXAMPLE) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            names.add(match.group(1))
    return names


def one_shot_services(services: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Services others wait for to *complete*: they run once and exit."""
    found = set()
    for service in services.values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            for name, how in depends.items():
                if (how or {}).get("condition") == "service_completed_successfully":
                    found.add(name)
    return found


def test_the_tally_services_are_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(TALLY_SERVICES) | {"postgres", "redis"} <= set(services)


@pytest.mark.parametrize("name", TALLY_SERVICES)
def test_each_tally_process_gets_every_setting_the_app_reads_and_no_other(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    read = settings_read_by_app()
    service = services[name]
    passed = environment_names(service)
    assert passed - read - variables_read_elsewhere() == set(), f"{name} sets what tally does not read"
    for path in env_file_paths(service):
        # .env is the operator's own file: .env.example is its template.
        template = ENV_EXAMPLE if path.name == ".env" else path
        assert env_example_names(template) - read == set(), f"{name}'s env_file {path.name}: not settings"
    assert read - passed == set(), f"{name} does not pass these settings (add them to x-tally-env)"


def compose_only_variables() -> set[str]:
    """Variables compose itself interpolates that are not tally settings (POSTGRES_PASSWORD, ...)."""
    return set(INTERPOLATED.findall(COMPOSE.read_text())) - settings_read_by_app()


def test_payment_provider_must_be_set(services: dict[str, dict[str, Any]]) -> None:
    for name in TALLY_SERVICES:
        value = str(services[name]["environment"]["PAYMENT_PROVIDER"])
        assert re.fullmatch(r"\$\{PAYMENT_PROVIDER:\?[^}]+\}", value), f"{name}: {value}"


def test_the_metrics_directory_is_the_web_servers_own_and_empty_at_each_start(
    services: dict[str, dict[str, Any]],
) -> None:
    if "PROMETHEUS_MULTIPROC_DIR" not in variables_read_elsewhere():
        pytest.skip("the code no longer reads PROMETHEUS_MULTIPROC_DIR")
    web = services["web"]
    directory = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert directory in web.get("tmpfs", []), "a tmpfs: emptied at every start, as prometheus-client needs"


def test_web_runs_the_images_default_command(services: dict[str, dict[str, Any]]) -> None:
    cmd = [line for line in dockerfile_stages()[-1] if line.startswith("CMD ")][-1]
    assert services["web"]["command"] == json.loads(cmd.removeprefix("CMD "))


def test_one_image_built_once(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name].get("image") for name in TALLY_SERVICES}
    assert len(images) == 1 and None not in images, images
    builders = [name for name, service in services.items() if "build" in service]
    assert len(builders) == 1, f"built by {builders}: the image must be built once"
    assert builders[0] in TALLY_SERVICES and services[builders[0]]["image"] in images


def test_long_running_services_have_a_healthcheck_and_restart(services: dict[str, dict[str, Any]]) -> None:
    long_running = set(services) - one_shot_services(services)
    assert {"web", "worker", "scheduler", "postgres", "redis"} <= long_running
    for name in sorted(long_running):
        service = services[name]
        assert service.get("restart") == "unless-stopped", name
        healthcheck = service.get("healthcheck") or {}
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"


def test_migrate_runs_once_and_the_processes_wait_for_it(services: dict[str, dict[str, Any]]) -> None:
    assert one_shot_services(services) == {"migrate"}
    migrate = services["migrate"]
    assert migrate.get("restart") in ("no", None)
    command = migrate["command"]
    assert command == ["flask", "--app", "wsgi", "db", "upgrade"]
    for name in ("web", "worker", "scheduler"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name


def test_the_processes_run_the_real_commands(services: dict[str, dict[str, Any]]) -> None:
    web, worker, scheduler = services["web"], services["worker"], services["scheduler"]
    assert web["command"][0] == "gunicorn" and web["command"][-1] == "wsgi:app"
    assert worker["command"] == ["flask", "--app", "wsgi", "worker"]
    assert scheduler["command"] == ["flask", "--app", "wsgi", "cron"]
    workers = [s for s in services.values() if s.get("command") == worker["command"]]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers) == 2
    assert scheduler.get("deploy", {}).get("replicas", 1) == 1  # RQ's cron has no leader election


@pytest.mark.parametrize("name", ["migrate", "worker", "scheduler"])
def test_each_flask_command_exists(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command compose runs is one the app's CLI (with its plugins) really has."""
    command = services[name]["command"]
    assert command[0] == "flask"
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(FlaskGroup(load_dotenv=False), [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_nothing_is_installed_or_mounted_at_start(services: dict[str, dict[str, Any]]) -> None:
    for name in TALLY_SERVICES:
        service = services[name]
        text = " ".join(str(part) for key in ("command", "entrypoint") for part in service.get(key) or [])
        assert "pip install" not in text, name
        assert not service.get("volumes"), f"{name} mounts {service.get('volumes')}: the image has the code"


# ---- .env.example ----------------------------------------------------------------------------


def test_env_example_lists_every_setting_the_app_reads() -> None:
    listed = env_example_names()
    assert settings_read_by_app() - listed == set(), "add these settings to .env.example"


def test_env_example_lists_only_settings_and_compose_variables() -> None:
    listed = env_example_names()
    assert listed - settings_read_by_app() - compose_only_variables() == set(), "tally reads none of these"
    assert compose_only_variables() - listed == set(), "the compose file uses these: add them to .env.example"


def test_env_example_leaves_the_provider_and_secrets_to_the_operator() -> None:
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if ENV_LINE.match(line))
    for name in ("PAYMENT_PROVIDER", "POSTGRES_PASSWORD", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"):
        assert values[name] == "", name


# ---- the image ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split at each FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_dockerfile_builds_in_two_stages_and_runs_slim_and_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    builder, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert len(dockerfile_stages()) >= 2
    assert any("--require-hashes -r requirements.lock" in line for line in builder)
    assert any(re.search(r"build-essential|\bgcc\b", line) for line in builder)
    assert not any(re.search(r"apt-get install|build-essential|\bgcc\b|\bg\+\+", line) for line in final)
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in final)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") and "/api/healthz" in line for line in final)
    cmd = [line for line in final if line.startswith("CMD ")][-1]
    assert '"gunicorn"' in cmd and '"wsgi:app"' in cmd


def test_the_build_context_leaves_out_local_and_secret_files() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", ".git", ".venv", "var"} <= ignored


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        first = block.split("\\")[0].split(";")[0].strip()
        if not first or first.startswith("#"):
            continue
        name, _, version = first.partition("==")
        assert version, f"not pinned: {first}"
        assert "--hash=sha256:" in block, f"no hash: {first}"
        pins[canonicalize_name(name)] = version.strip()
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for spec in dependencies:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {requirement.name}=={pins[name]}, "
            f"pyproject.toml wants {requirement.specifier}: run `make lock`"
        )
