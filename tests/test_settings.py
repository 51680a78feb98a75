"""Settings precedence: explicit argument > ADAPTBENCH_* environment > settings.ini > built-in default."""
import subprocess
import sys

import pytest

from adaptbench.core import DEFAULTS, SettingsError, get_setting, project_root, settings


@pytest.fixture
def root(tmp_path, monkeypatch):
    for k in DEFAULTS: monkeypatch.delenv(f"ADAPTBENCH_{k.upper()}", raising=False)
    monkeypatch.delenv("ADAPTBENCH_SETTINGS", raising=False)
    (tmp_path / "settings.ini").write_text("[adaptbench]\nmodel = ini-model\nseed = 11\nruns_dir = out/runs\n")
    monkeypatch.setenv("ADAPTBENCH_ROOT", str(tmp_path))
    return tmp_path


def test_precedence(root, monkeypatch):
    assert get_setting("model") == "ini-model"                  # settings.ini over the default
    assert get_setting("device") == DEFAULTS["device"]          # default where the file is silent
    monkeypatch.setenv("ADAPTBENCH_MODEL", "env-model")
    assert get_setting("model") == "env-model"                  # environment over settings.ini
    assert get_setting("model", "arg-model") == "arg-model"     # argument over everything
    assert get_setting("seed") == 11 and isinstance(get_setting("seed"), int)
    assert get_setting("runs_dir") == root / "out" / "runs"     # relative to the project root
    assert settings(seed=5)["seed"] == 5


def test_root_is_found_upwards(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPTBENCH_ROOT", raising=False)
    (tmp_path / "settings.ini").write_text("[adaptbench]\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert project_root(deep) == tmp_path


def test_explicit_settings_file_and_errors(root, tmp_path, monkeypatch):
    other = tmp_path / "other.ini"
    other.write_text("[adaptbench]\nexecutor = ray\n")
    monkeypatch.setenv("ADAPTBENCH_SETTINGS", str(other))
    assert get_setting("executor") == "ray"
    other.write_text("not an ini file")
    with pytest.raises(SettingsError, match="not a valid settings file"):
        get_setting("executor")
    with pytest.raises(SettingsError, match="unknown setting"):
        get_setting("colour")


def test_environment_reaches_a_fresh_process(root):
    code = "from adaptbench.core import get_setting; print(get_setting('model'))"
    env = {"ADAPTBENCH_ROOT": str(root), "ADAPTBENCH_MODEL": "from-env", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "from-env"


def test_a_typed_path_is_relative_to_where_it_was_typed(root, tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert get_setting("runs_dir", "../x") == tmp_path / "a" / "x"        # an argument: from the current directory
    assert get_setting("runs_dir") == root / "out" / "runs"                 # settings.ini: from the project root
    monkeypatch.setenv("ADAPTBENCH_RUNS_DIR", "env/runs")
    assert get_setting("runs_dir") == root / "env" / "runs"                 # the environment: from the project root


def test_outside_a_project(tmp_path, monkeypatch):
    from adaptbench.core import ProjectNotFoundError, find_project_root
    monkeypatch.delenv("ADAPTBENCH_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_project_root() is None and project_root() == tmp_path    # the library falls back to the cwd
    with pytest.raises(ProjectNotFoundError, match="ADAPTBENCH_ROOT"):
        project_root(required=True)                                      # the command line says so
    monkeypatch.setenv("ADAPTBENCH_ROOT", str(tmp_path / "missing"))
    with pytest.raises(ProjectNotFoundError, match="missing"):
        project_root(required=True)
