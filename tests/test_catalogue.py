"""The study catalogue's declarations (issue 28): ranges with open or closed ends, choices and items read from the
registries, and what the studies declare with them — a newly registered task is accepted with no notebook edit, a
literal list names registered things only, and a level ε or δ on the boundary of (0, 1) fails at `--dry-run`."""
import re
import subprocess
import sys

import pytest

import adaptbench.tasks as T
from adaptbench.catalogue import (REGISTRIES, Interval, list_studies, parse_interval, parse_parameters, registry_names,
                                  resolve_params, study_parameters)
from adaptbench.cli import main
from adaptbench.core import ParameterError, StudyError

STUDIES = list_studies()


# --- ranges: each bracket form, and the values on and beside its ends ----------------------------------------------
@pytest.mark.parametrize("text, lo, hi, lo_open, hi_open, shown", [
    ("0..1", 0, 1, False, False, "0..1"),          # no brackets: both ends included, as before
    ("[0..1]", 0, 1, False, False, "0..1"),
    ("(0..1)", 0, 1, True, True, "(0..1)"),
    ("[0..1)", 0, 1, False, True, "[0..1)"),
    ("(0..1]", 0, 1, True, False, "(0..1]"),
    ("(0..]", 0, None, True, False, "(0..)"),      # an unbounded end is open whatever its bracket
    ("(0..)", 0, None, True, False, "(0..)"),
    ("[1..)", 1, None, False, False, "1.."),
    ("..10", None, 10, False, False, "..10"),
    ("(..10)", None, 10, False, True, "(..10)"),
    ("(0.5..2.5]", 0.5, 2.5, True, False, "(0.5..2.5]"),
])
def test_range_forms(text, lo, hi, lo_open, hi_open, shown):
    iv = parse_parameters(f"x = 1  # a number [range: {text}]")["x"]["checks"]["range"]
    assert iv == Interval(lo, hi, lo_open, hi_open) and str(iv) == shown


@pytest.mark.parametrize("text, inside, outside", [
    ("(0..1)", [1e-12, 0.5, 1 - 1e-12], [0, 0.0, 1, 1.0, -0.1, 1.1, float("nan")]),
    ("[0..1)", [0, 0.999], [1, -1e-12]),
    ("(0..1]", [1, 1e-12], [0, 1.0000001]),
    ("0..1", [0, 1], [-1e-12, 1 + 1e-12]),
    ("(0..)", [1e-300, 10**12], [0, -1]),
    ("1..8", [1, 8], [0, 9]),
])
def test_range_boundaries(text, inside, outside):
    iv = parse_interval(text)
    assert all(v in iv for v in inside), [v for v in inside if v not in iv]
    assert not any(v in iv for v in outside), [v for v in outside if v in iv]


@pytest.mark.parametrize("text, message", [("(0..1", "one bracket"), ("0..1)", "one bracket"), ("(1..1)", "holds no number"),
                                           ("3..1", "holds no number"), ("0-1", "[range: LO..HI]"), ("a..b", "[range: LO..HI]")])
def test_malformed_ranges_say_how_to_write_one(text, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        parse_parameters(f"x = 1  # a number [range: {text}]")


# --- every ε and δ of the studies lies strictly inside (0, 1); the boundary fails at --dry-run, on one line ----------
def test_every_level_is_declared_open():
    levels = {(s, k): p["checks"].get("range") for s in STUDIES for k, p in study_parameters(s).items()
              if k.startswith(("eps", "delta")) or k in ("cal_fraction", "ci_level")}
    assert ("risk_controlled_budgets", "delta") in levels and ("reasoning_collapse", "ci_level") in levels
    assert {k: str(v) for k, v in levels.items() if v != Interval(0, 1, True, True)} == {}


@pytest.mark.parametrize("name, value", [("eps_wrong", "0"), ("eps_premature", "0.0"), ("delta", "1.0"), ("delta", "1"),
                                         ("cal_fraction", "1"), ("eps_wrong_grid", "0.3,1"), ("eps_wrong_grid", "0.3,x")])
def test_dry_run_refuses_a_level_on_the_boundary(name, value, runs_dir, capsys):
    assert main(["run", "risk_controlled_budgets", "-p", name, value, "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    if "," in value:                                                          # a list: each item checked
        assert f"{name}: item " in err and ("is outside its range (0..1)" in err or "is not a number" in err)
    else: assert f"{name} = {float(value)!r} is outside its range (0..1): needs 0 < {name} < 1" in err
    assert not runs_dir.exists()


def test_dry_run_accepts_levels_just_inside(runs_dir, capsys):
    assert main(["run", "risk_controlled_budgets", "-p", "eps_wrong", "1e-9", "-p", "delta", "0.999", "--dry-run"]) == 0
    assert "parameters are valid" in capsys.readouterr().out


# --- registries ----------------------------------------------------------------------------------------------------
def test_every_registry_lists_names():
    for name, reg in REGISTRIES.items():
        assert registry_names(name), f"@{name} ({reg.about}) holds no names"


def test_an_unknown_registry_names_the_known_ones():
    with pytest.raises(StudyError, match="unknown registry @puzzles; known registries: @tasks, @styles, @p_values"):
        parse_parameters("t = 'hanoi'  # a task [choices: @puzzles]")


def test_importing_the_catalogue_imports_no_registry():
    "Registries are read when a value is checked, so listing and parsing studies never imports torch."
    code = ("import sys, adaptbench.catalogue as c\n[c.study_parameters(s) for s in c.list_studies()]\n"
            "print(sorted(m for m in ('torch', 'adaptbench.forgetting', 'adaptbench.plasticity', 'adaptbench.risk', "
            "'adaptbench.tasks') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_a_registered_task_is_accepted_with_no_notebook_edit(capsys):
    "Register a throw-away puzzle: every study whose tasks are @tasks(puzzle,…) takes it at once, and lists it."
    with pytest.raises(ParameterError, match="'toy_towers' is not one of"):
        resolve_params("reasoning_collapse", {"tasks": "hanoi,toy_towers"})

    class ToyTowers(T.Task):
        name, kind = "toy_towers", "puzzle"

    T.register_task(ToyTowers)
    try:
        assert resolve_params("reasoning_collapse", {"tasks": "hanoi,toy_towers"})["tasks"] == ["hanoi", "toy_towers"]
        assert resolve_params("train_reasoner", {"tasks": "toy_towers,"})["tasks"] == ["toy_towers"]
        assert resolve_params("risk_controlled_budgets", {"puzzles": "toy_towers"})["puzzles"] == "toy_towers"
        with pytest.raises(ParameterError, match="'toy_towers' is not one of"):   # a string-task study does not take it
            resolve_params("forgetting", {"tasks": "reverse,toy_towers"})
        assert main(["studies", "reasoning_collapse"]) == 0
        (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith("tasks ")]
        assert "[items: @tasks(puzzle,arithmetic) = " in line and "toy_towers" in line
    finally:
        T._REGISTRY.pop("toy_towers")                   # leave the registry as the other tests expect it
    assert "toy_towers" not in T.list_tasks()


# --- the studies' declarations -------------------------------------------------------------------------------------
def _lists():
    "(study, parameter, kind, Choices) of every choices/items declaration of every study."
    return [(s, k, kind, c) for s in STUDIES for k, p in study_parameters(s).items()
            for kind, c in p["checks"].items() if kind in ("choices", "items")]


@pytest.mark.parametrize("study, name, kind, choices", _lists(), ids=lambda x: x if isinstance(x, str) else "")
def test_declared_lists_resolve(study, name, kind, choices):
    assert choices.names(), f"{study}.{name}: [{kind}: {choices}] accepts nothing"


def test_literal_lists_name_registered_things_only_and_copy_no_registry():
    """A list written out on purpose (a study supporting part of a registry) names only what the registry holds; a
    list that is a whole registry copied by hand must name the registry instead (it would drift)."""
    registries = {k: set(registry_names(k)) for k in REGISTRIES}
    registries |= {f"tasks({kind})": set(T.list_tasks(kind)) for kind in ("puzzle", "arithmetic", "string")}
    for study, name, kind, c in _lists():
        if c.registry is not None: continue
        mine = set(c.names())
        for reg, names in registries.items():
            if mine & names:
                assert mine <= names, f"{study}.{name}: [{kind}: {c}] names {sorted(mine - names)}, which @{reg} does not hold"
            assert mine != names, f"{study}.{name}: [{kind}: {c}] copies @{reg} by hand; declare [{kind}: @{reg}]"


# --- list parameters: plain items, each once, whatever the list declares; --dry-run and the real run fail alike -----
@pytest.mark.parametrize("study, name, value, message", [
    ("reasoning_collapse", "tasks", "[{a: 1}]", "tasks: item {'a': 1} is a mapping, not a plain value; write the items as plain values, e.g. -p tasks "),
    ("reasoning_collapse", "tasks", "hanoi,hanoi", "tasks: 'hanoi' given twice; list each item once, e.g. -p tasks hanoi"),
    ("reasoning_collapse", "modes", "[think, [direct]]", "modes: item ['direct'] is a list, not a plain value"),
    ("train_reasoner", "styles", "direct,direct", "styles: 'direct' given twice"),
    ("forgetting", "methods", "sft,ewc,sft", "methods: 'sft' given twice; list each item once, e.g. -p methods sft,ewc"),
    ("plasticity_traps", "mitigations", "[none, {redo: 0.1}]", "mitigations: item {'redo': 0.1} is a mapping"),   # declares nothing
])
def test_bad_list_items_fail_at_dry_run_in_one_line(runs_dir, capsys, study, name, value, message):
    for argv in (["run", study, "-p", name, value, "--dry-run"], ["run", study, "-p", name, value, "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not runs_dir.exists()                                           # nothing ran


def test_a_sweep_with_a_repeated_item_fails_before_anything_runs(runs_dir, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("grid:\n  tasks: [[hanoi, addition], [hanoi, hanoi]]\n")
    assert main(["sweep", "reasoning_collapse", str(spec), "--dry-run"]) == 2
    assert "sweep parameter set 1" in (err := capsys.readouterr().err) and "'hanoi' given twice" in err
    assert not runs_dir.exists()
