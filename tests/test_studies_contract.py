"""Contract of every study notebook: its parameters cell is read the same way by the workbench (ast) and papermill,
its defaults satisfy their own declared ranges and choices, and a notebook run by hand computes the very run id the
command line computes for the same values."""
import json
import re

import pytest
from conftest import make_study

from adaptbench.core import ParameterError
from adaptbench.catalogue import (current_run, list_studies, papermill_blind_spots, parameters_cell, resolve_params,
                                  study_parameters, study_path, study_values)
from adaptbench.runner import run_study
from adaptbench.runs import run_id

STUDIES = list_studies()


def test_there_are_studies():
    assert {"smoke", "reasoning_collapse", "forgetting"} <= set(STUDIES)


@pytest.mark.parametrize("study", STUDIES)
def test_papermill_sees_every_parameter(study):
    blind = papermill_blind_spots(study)
    assert not blind, (f"papermill cannot inspect parameter(s) {blind} of {study_path(study)}: write each as a plain "
                       "`name = value  # comment` line, with no annotation and no '=' inside a string default")


@pytest.mark.parametrize("study", STUDIES)
def test_defaults_satisfy_their_declarations(study):
    spec = study_parameters(study)
    assert any(p["checks"] for p in spec.values()), f"{study} declares no range or choices in its parameters cell"
    resolve_params(study, {})                      # raises ParameterError if a default breaks its own declaration


@pytest.mark.parametrize("study", STUDIES)
def test_notebook_run_id_is_the_cli_run_id(study):
    "The run-id line takes the parameters cell's names itself (no hand-copied dict), so both ids agree."
    cells = ["".join(c["source"]) for c in json.loads(study_path(study).read_text())["cells"]]
    (line,) = [l for c in cells for l in c.splitlines() if "current_run(" in l and not l.lstrip().startswith(("from", "#"))]
    assert f'current_run("{study}", globals())' in line, line
    assert not any("params = dict(" in c for c in cells), "a hand-copied params dict drifts from the parameters cell"
    ns = {}
    exec(parameters_cell(study), ns)               # the defaults, as "Run All" leaves them
    assert run_id(study, study_values(study, ns)) == run_id(study, resolve_params(study, {}))


def test_a_rescaled_parameter_keeps_the_cli_id(runs_dir, monkeypatch):
    "A later cell that rewrites a parameter (scale = auto → default sizes) does not change the interactive run's id."
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.delenv("IN_TEST", raising=False)
    shell = InteractiveShell.instance()
    try:
        shell.run_cell(parameters_cell("forgetting").replace("steps = 14", "steps = 3"), store_history=True)
        shell.run_cell('scale, steps, model = "default", 99, "tiny-random-llama"', store_history=True)
        run = current_run("forgetting", shell.user_ns)
    finally:
        InteractiveShell.clear_instance()
    assert run.id == run_id("forgetting", resolve_params("forgetting", {"steps": 3}))
    assert run.dir.parent == runs_dir / "forgetting" / "_interactive"


@pytest.mark.parametrize("src, hidden", [
    ('query = "a=b"  # a default with = inside a string\nrun_dir = ""  # set by the runner', "query"),
    ('tag: None|str = None  # an annotated parameter\nrun_dir = ""  # set by the runner', "tag"),
])
def test_parameters_papermill_cannot_see(studies, runs_dir, src, hidden):
    "The public bug replay: papermill's inspection misses these lines; the workbench sees, accepts and injects them."
    make_study(studies, "blind", src, f"open(run_dir + '/seen.txt', 'w').write(repr({hidden}))\n"
               "import pandas as pd\nfrom adaptbench.runs import Run\n"        # a complete run writes its table
               f"Run.from_dir(run_dir).write_table(pd.DataFrame({{'seen': [repr({hidden})]}}))")
    assert papermill_blind_spots("blind") == [hidden]          # what the contract test above would report
    assert hidden in study_parameters("blind")
    run = run_study("blind", {hidden: "k=v"}, progress=False)   # no ParameterError: no parameter 'query'
    assert (run.dir / "seen.txt").read_text() == "'k=v'"


def test_declared_ranges_and_choices_fail_before_anything_runs(runs_dir):
    for study, params, message in [("smoke", {"n_prompts": "0"}, "n_prompts = 0 is outside its range 1..8"),
                                   ("smoke", {"max_new_tokens": "-3"}, "max_new_tokens = -3 is outside its range 1.."),
                                   ("reasoning_collapse", {"tasks": "hanoi,towers"}, "'towers' is not one of"),
                                   ("risk_controlled_budgets", {"delta": "1.5"}, "delta = 1.5 is outside its range (0..1)"),
                                   ("risk_controlled_budgets", {"delta": "1"}, "delta = 1.0 is outside its range (0..1)"),
                                   ("forgetting", {"methods": "sft,magic"}, "'magic' is not one of")]:
        with pytest.raises(ParameterError, match=re.escape(message)):
            run_study(study, params, progress=False)
    assert not runs_dir.exists()
