""".env.example lists every variable the stack reads, each with a comment."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# `NAME=value`, or `# NAME=value` for an optional variable at its default.
VARIABLE_LINE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=")


def settings_variables():
    """Names settings.py reads: env.<cast>("NAME"), environ.Env().<cast>("NAME")
    and _secret("NAME") (which also reads NAME_FILE)."""
    tree = ast.parse((ROOT / "cinc_portal" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        reader = isinstance(func, ast.Attribute) and (
            (isinstance(func.value, ast.Name) and func.value.id == "env")
            or (
                isinstance(func.value, ast.Call)
                and ast.unparse(func.value.func).endswith("Env")
            )
        )
        if reader:
            names.add(first.value)
        elif isinstance(func, ast.Name) and func.id == "_secret":
            names.update({first.value, first.value + "_FILE"})
    return names


def example_variables():
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m[1] for line in lines if (m := VARIABLE_LINE.match(line))}


def test_settings_reader_finds_the_known_variables():
    names = settings_variables()

    assert {"SECRET_KEY_FILE", "DATABASE_URL", "VAR_DIR", "LOG_FORMAT"} <= names
    assert len(names) > 40


def test_every_setting_is_in_the_example():
    missing = settings_variables() - example_variables()

    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_compose_interpolation_is_in_the_example():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))

    assert used
    assert not used - example_variables()


def test_the_sandboxs_variables_are_in_the_example():
    text = (ROOT / "sandbox" / "app.py").read_text()
    used = set(re.findall(r"environ\.get\(\"(SANDBOX_[A-Z_]+)\"", text))

    assert used == {
        "SANDBOX_CLIENT_ID",
        "SANDBOX_CLIENT_SECRET",
        "SANDBOX_REDIRECT_URIS",
    }
    assert used <= example_variables()


def test_every_variable_has_a_comment_in_its_block():
    lines = (ROOT / ".env.example").read_text().splitlines()
    uncommented = []
    commented = False
    for line in lines:
        if not line.strip():
            commented = False
        elif VARIABLE_LINE.match(line):
            if not commented:
                uncommented.append(line)
        elif line.startswith("#"):
            commented = True

    assert not uncommented


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEBUG", "False"), ("SECRET_KEY", ""), ("TOKEN_ENCRYPTION_KEY", "")],
)
def test_example_leans_to_production_and_holds_no_secret(env_file_values, name, value):
    assert env_file_values(ROOT / ".env.example")[name] == value
