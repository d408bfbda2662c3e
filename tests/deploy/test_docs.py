"""The operator documentation stays true: docs/configuration.md is exactly what the
settings models generate, and the guide's links and commands point at what exists."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import shlex
from types import ModuleType

import pytest

from tests.deploy.codebase import ROOT, SERVICES, console_scripts, rejection

GUIDE = ROOT / "docs" / "operator-guide.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def config_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_generated_from_the_settings(config_reference: ModuleType) -> None:
    assert CONFIGURATION.read_text() == config_reference.render(), (
        "docs/configuration.md is out of date: run .venv/bin/python scripts/config_reference.py"
    )


def test_configuration_reference_names_every_setting_of_every_service(config_reference: ModuleType) -> None:
    text = config_reference.render()

    for cls in SERVICES.values():
        for name in cls.model_fields:
            assert f"`ZC_{name.upper()}`" in text
    assert config_reference.SERVICES == SERVICES


def test_fallback_descriptions_only_fill_gaps(config_reference: ModuleType) -> None:
    """A description written in settings.py wins; then its fallback here is dead weight."""
    for name in config_reference.FALLBACK_DESCRIPTIONS:
        fields = [cls.model_fields[name] for cls in SERVICES.values() if name in cls.model_fields]
        assert fields, f"{name} is no longer a setting: drop its fallback description"
        assert any(not field.description for field in fields), (
            f"{name} has a description in settings.py now: drop its fallback in scripts/config_reference.py"
        )


def test_every_setting_has_a_description(config_reference: ModuleType) -> None:
    for service, cls in SERVICES.items():
        for name, field in cls.model_fields.items():
            assert field.description or name in config_reference.FALLBACK_DESCRIPTIONS, (
                f"{service}: {name} has no description: add one in settings.py"
            )


def test_guide_links_resolve() -> None:
    for path in (GUIDE, ROOT / "deploy" / "k8s" / "README.md"):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{path.name} links to a missing {target}"


def test_guide_commands_are_real() -> None:
    """Every `zerocloud-*` command line in the guide's code (blocks and spans) is one our
    console scripts accept."""
    code = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S) + re.findall(r"`([^`\n]+)`", GUIDE.read_text())
    commands = set()
    for snippet in code:
        for line in snippet.splitlines():
            words = shlex.split(line.split("#")[0]) if "zerocloud-" in line else []
            for start, word in enumerate(words):
                if word in console_scripts():
                    end = next((i for i, w in enumerate(words[start:], start) if w in ("&&", "|", ";", ">", "<")), len(words))
                    commands.add(tuple(words[start:end]))
    assert {command[0] for command in commands} >= {f"zerocloud-{name}" for name in SERVICES}
    for command in commands:
        assert rejection(command) is None, rejection(command)


def test_each_service_loads_the_settings_class_the_reference_names(config_reference: ModuleType) -> None:
    """"Read by" in the reference rests on this: `zerocloud-<service>` loads `<Service>Settings`."""
    for service, cls in config_reference.SERVICES.items():
        module = console_scripts()[f"zerocloud-{service}"].partition(":")[0]
        source = inspect.getsource(importlib.import_module(module))
        assert f"load_settings({cls.__name__}," in source, f"{module} does not load {cls.__name__}"
