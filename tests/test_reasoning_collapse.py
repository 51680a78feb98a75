"""A short real-model run of the reasoning-collapse study (SmolLM2-135M, smallest settings), through papermill.

Checks what the study promises, not what the tiny model achieves: unsolvable instances are reported and never
scored, every table and figure is written, accuracies sit inside their intervals, truncation is counted apart from
wrong answers, and an interrupted run resumes from the chunks it already wrote.
"""
import pytest

from adaptbench.runner import run_study
from adaptbench.runs import Run

PARAMS = dict(tasks=["river_crossing", "hanoi", "addition"], n_min=5, n_max=6, samples=1, budget=8, batch_size=4,
              temperature=0.0)


@pytest.mark.slow
def test_reasoning_collapse_smallest_real_run(tmp_path):
    run = run_study("reasoning_collapse", PARAMS, runs_dir=tmp_path, progress=False)
    assert run.is_complete, run.status
    inst = run.read_table("instances")
    # River Crossing with n = 6 and the paper's k = 3 has no solution: reported, excluded, not scored
    bad = inst[(inst.puzzle == "river_crossing") & (inst.n == 6)]
    assert len(bad) == 1 and not bad.solvable.iloc[0]
    samples = run.read_table("samples")
    assert not ((samples.puzzle == "river_crossing") & (samples.n == 6)).any()
    assert len(samples) == 5 * 2                      # 5 solvable instances (3 puzzles, 2 additions) × 2 modes × 1 sample
    assert set(samples.outcome) <= {"solved", "wrong", "no_answer", "truncated"}
    assert (samples.loc[samples.outcome == "truncated", "truncated"]).all()
    assert (samples.n_thinking_tokens + samples.n_answer_tokens == samples.n_tokens).all()
    assert (samples.n_tokens <= 8).all()
    res = run.read_table("results")
    assert set(zip(res.puzzle, res.n, res["mode"])) == {(p, n, m) for p, n in [("river_crossing", 5), ("hanoi", 5),
                                                                            ("hanoi", 6), ("addition", 5), ("addition", 6)]
                                                        for m in ("think", "direct")}
    assert ((res.ci_low <= res.accuracy) & (res.accuracy <= res.ci_high)).all()
    assert res.truncation_rate.between(0, 1).all()
    for t in ("collapse", "pass_curve", "regimes"): assert run.has_table(t), t
    figs = {p.stem for p in (run.dir / "figures").glob("*.png")}
    assert figs == {"accuracy_vs_n", "effort_and_truncation_vs_n", "first_error_vs_length", "pass_at_k_vs_tokens",
                    "regimes_vs_n"}
    assert "collapsing at" in (run.dir / "summary.txt").read_text() or "no collapse" in (run.dir / "summary.txt").read_text()
    # 8 tokens cannot hold Hanoi's 63 moves at n = 6: said before generation, with the budget that would
    log = (run.dir / "notebook.ipynb").read_text()
    assert "cannot hold the shortest correct answer" in log and "-p budget" in log

    # an interrupted run resumes: written chunks are reused, a missing one is regenerated
    chunks = sorted((run.dir / "tables").glob("traces_*_chunks/*.parquet"))
    assert len(chunks) == 4                           # (think, direct) × (puzzle, arithmetic) tables, one chunk each
    chunks[0].unlink()
    keep = chunks[1].stat().st_mtime_ns
    run.mark("failed", error="simulated interruption")
    again = run_study("reasoning_collapse", PARAMS, runs_dir=tmp_path, progress=False)
    assert again.dir == run.dir and again.is_complete and not again.skipped
    assert chunks[0].exists() and chunks[1].stat().st_mtime_ns == keep
    assert Run.from_dir(run.dir).read_table("samples").drop(columns="run_id").equals(samples.drop(columns="run_id"))


def test_an_n_outside_a_tasks_range_fails_before_the_model_loads(tmp_path):
    "Blocks World is defined for 1–26 blocks: n_max = 27 stops in the set-up cell, naming the range."
    import time
    t0 = time.time()
    with pytest.raises(Exception, match="n must be an integer from 1 to 26"):
        run = run_study("reasoning_collapse", dict(tasks=["blocks_world"], n_max=27), runs_dir=tmp_path, progress=False)
        raise AssertionError(run.status)          # run_study returned: surface its status
    assert not list(tmp_path.glob("reasoning_collapse/*/tables/*"))   # nothing was generated
