"""The task contract (STYLE.md, "Plug-ins behind one protocol"), run on every registered task with no per-task code.

For every task in `list_tasks()` and each of its declared small instances (`test_sizes` × `test_seeds`):
the solver's answer, written in the answer form — alone, after reasoning, after a closed thinking segment —
parses back to itself and grades `solved`; every corruption the task generates is `wrong` at exactly its stated
first error step, both when checked directly and when graded from text (where the tolerant parser may refuse a
malformed answer, `no_answer`, but never accept it at another step); unsolvable instances have no solution and are
flagged; text without an answer is `no_answer`, or `truncated` when the budget ran out; the parser never raises;
prompts come in both styles; bad requests raise `TaskError` naming what is allowed.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from adaptbench.tasks import (OUTCOMES, STYLES, Instance, ParseResult, TaskError, Verdict, get_task, list_tasks,
                              make_instances, split_reasoning)

TASKS = list_tasks()


def instances(name):
    T = get_task(name)
    return [T.instance(n, seed=s) for n in T.test_sizes for s in T.test_seeds]


def test_the_registry_holds_every_kind():
    assert {"hanoi", "checker_jumping", "river_crossing", "blocks_world"} <= set(list_tasks("puzzle"))
    assert "addition" in list_tasks("arithmetic")
    assert {"reverse", "uppercase", "sort", "first_last", "double", "add", "sub", "mul_format"} <= set(list_tasks("string"))
    assert sorted(list_tasks("puzzle") + list_tasks("arithmetic") + list_tasks("string")) == TASKS


@pytest.mark.parametrize("name", TASKS)
def test_declared_test_sizes_are_valid_instances(name):
    T = get_task(name)
    assert T.test_sizes and T.test_seeds and T.name == name and T.kind
    for inst in instances(name):
        assert isinstance(inst, Instance) and inst.task == name
        assert T.instance(inst.n, seed=inst.seed) == inst                # reproducible
        assert name in inst.id and f"n{inst.n}" in inst.id


TEMPLATES = ["{ans}", "Let me work it out.\nStep one, then step two.\n{ans}\n",
             "<think>\nfirst idea, then a check\n</think>\n{ans}", "{ans}\n\n"]


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_solver_answer_round_trips_and_grades_solved(name, template):
    T = get_task(name)
    solved = 0
    for inst in instances(name):
        sol = T.solve(inst)
        if not T.is_solvable(inst):
            assert sol is None
            continue
        text = template.format(ans=T.format_answer(sol))
        r = T.parse(text)
        assert r.ok and r.reason == "" and r.start >= 0, (inst.id, r.reason, text)
        assert r.answer == sol, (inst.id, text)
        v = T.grade(inst, text)
        assert isinstance(v, Verdict) and v.outcome == "solved" and v.solved, (inst.id, v)
        assert v.first_error_step is None and v.reason == "" and v.valid_prefix_len == v.n_steps
        assert T.grade(inst, text, truncated=True).outcome == "solved"   # a complete answer counts even at the budget
        solved += 1
    assert solved


@pytest.mark.parametrize("name", TASKS)
def test_every_corruption_is_caught_at_its_true_step(name):
    T = get_task(name)
    checked = through_text = 0
    for inst in instances(name):
        if not T.is_solvable(inst): continue
        sol = T.solve(inst)
        for bad, step in T.corruptions(inst, sol):
            assert T.format_answer(bad) != T.format_answer(sol)          # (True == 1 in Python, so compare texts)
            v = T.check(inst, bad)
            assert (v.outcome, v.first_error_step, v.valid_prefix_len) == ("wrong", step, step - 1), (inst.id, bad, step, v)
            assert v.reason
            g = T.grade(inst, "Working...\n" + T.format_answer(bad))
            assert g.outcome in ("wrong", "no_answer"), (inst.id, bad, g)
            if g.outcome == "wrong":
                assert g.first_error_step == step, (inst.id, bad, step, g)
                through_text += 1
            checked += 1
    assert checked >= 10, checked
    assert through_text >= checked / 2, (through_text, checked)   # most corruptions are graded from text too


@pytest.mark.parametrize("name", TASKS)
def test_no_answer_and_truncated_are_told_apart(name):
    T = get_task(name)
    inst = instances(name)[0]
    for text in ["", "I am still thinking about", "<think>the answer is " + T.format_answer(T.solve(inst) or [])]:
        v = T.grade(inst, text)
        assert v.outcome == "no_answer" and not v.parsed and v.reason and v.first_error_step is None, (text, v)
        assert T.grade(inst, text, truncated=True).outcome == "truncated"


@pytest.mark.parametrize("name", TASKS)
def test_prompts_in_both_styles(name):
    T = get_task(name)
    inst = instances(name)[0]
    for style in STYLES:
        msgs = T.prompt(inst, style)
        assert msgs and all(set(m) == {"role", "content"} and m["content"] for m in msgs)
        assert msgs[-1]["role"] == "user"
    assert T.prompt(inst, "think") != T.prompt(inst, "direct")
    with pytest.raises(TaskError, match="prompt style"): T.prompt(inst, "shout")


@pytest.mark.parametrize("name", TASKS)
def test_bad_requests_raise_task_errors(name):
    T = get_task(name)
    lo, hi = T.n_range
    for bad in (lo - 1, 1.5, True, "3") + (() if hi is None else (hi + 1,)):
        with pytest.raises(TaskError, match="n must be an integer"): T.instance(bad)
    with pytest.raises(TaskError, match="unknown option"): T.instance(T.test_sizes[0], nonsense=1)
    assert isinstance(TaskError("x"), ValueError)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(TaskError, match="known tasks: " + ", ".join(TASKS)): get_task("sokoban")
    with pytest.raises(TaskError, match="known tasks"): make_instances(["sokoban"], [1])


def test_make_instances_nests_seeds_tasks_and_n():
    got = make_instances(["addition", "reverse"], [2, 3], seeds=[0, 1])
    assert [(i.task, i.n, i.seed) for i in got] == [(t, n, s) for s in (0, 1) for t in ("addition", "reverse") for n in (2, 3)]
    assert make_instances("hanoi", 2) == [get_task("hanoi").instance(2)]


def test_split_reasoning_is_the_answer_region_of_every_parser():
    text = "<think>moves = [[1, 0, 2]] answer = 7</think>\nanswer = 5"
    thinking, answer, at = split_reasoning(text)
    assert answer == "\nanswer = 5" and text[at:] == answer
    assert get_task("addition").parse(text).answer == 5
    assert not get_task("hanoi").parse(text).ok                      # the list inside the thinking does not count


# --- the parser never raises, on any task -------------------------------------------------------------------------------

FRAGMENTS = ["answer", "answer = ", "Answer:", "moves = ", "moves = [", "[[1, 0, 2]]", "]", "[", "12", "-3", "a b c",
             "A B", "=", "*", "\n", " ", "<think>", "</think>", "'", '"', "```", "é", "\x00", "99999999999999999999"]


def check_parse(text):
    for name in TASKS:
        T = get_task(name)
        r = T.parse(text)
        assert isinstance(r, ParseResult)
        if r.ok:
            assert r.reason == "" and r.start >= 0
            v = T.grade(instances(name)[0], text)
            assert v.outcome in OUTCOMES and (v.solved or v.reason)
        else:
            assert r.answer is None and r.reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_parser_never_raises_on_random_text(text):
    check_parse(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_parser_never_raises_on_adversarial_text(text):
    check_parse(text)


# --- only the last answer counts; programs are not answers; prompts hold no answer to copy ---------------------------

def solvable_instances(name, k=2):
    T = get_task(name)
    return [i for i in instances(name) if T.is_solvable(i)][:k]


def anchor_of(T, text):
    "The answer anchor in `text` (e.g. 'moves =', 'answer =') and the variable it names."
    m = list(re.finditer(T.answer_pattern, text))[-1]
    return m, re.match(r"\W*(\w+)", m.group(0)).group(1)


@pytest.mark.parametrize("name", TASKS)
def test_only_the_last_answer_counts_and_a_cut_off_one_is_truncated(name):
    T = get_task(name)
    for inst in solvable_instances(name):
        s = T.format_answer(T.solve(inst))
        m, _ = anchor_of(T, s)
        cut = s[:m.end() + max(1, (len(s) - m.end()) // 2)]          # the final answer, cut off half-way
        text = f"{s}\nWait, let me write it once more.\n{cut}"
        assert T.grade(inst, text, truncated=True).outcome == "truncated", (inst.id, text)
        assert T.grade(inst, text).outcome in ("wrong", "no_answer"), (inst.id, text)   # never the earlier answer


@pytest.mark.parametrize("name", TASKS)
def test_program_style_answers_are_no_answer(name):
    T = get_task(name)
    for inst in solvable_instances(name):
        s = T.format_answer(T.solve(inst))
        m, word = anchor_of(T, s)
        programs = [f"{m.group(0)} solve({inst.n})",                               # a call instead of the value
                    f"{s}\nfor step in more_steps():\n    {word}.append(step)",    # code that changes it afterwards
                    f"{s}\n{word} += extra()"]
        for text in programs:
            v = T.grade(inst, text)
            assert v.outcome == "no_answer" and "program" in v.reason, (inst.id, text, v)


@pytest.mark.parametrize("name", TASKS)
def test_prompts_hold_no_copyable_answer(name):
    T = get_task(name)
    for inst in solvable_instances(name, 4):
        sol = T.solve(inst)
        for style in STYLES:
            text = "\n".join(msg["content"] for msg in T.prompt(inst, style))
            assert T.format_answer(sol) not in text
            r = T.parse(text)                               # whatever reads as an answer has no correct step
            assert not r.ok or T.check(inst, r.answer).valid_prefix_len == 0, (inst.id, style, r)


def test_the_cut_off_hanoi_example():
    H = get_task("hanoi")
    inst, text = H.instance(1), "moves = [[1, 0, 1]]\nmoves = [[1, 0"
    assert H.grade(inst, "moves = [[1, 0, 2]]").solved
    assert H.grade(inst, text, truncated=True).outcome == "truncated"
    v = H.grade(inst, text)
    assert v.outcome == "no_answer" and "not well formed" in v.reason
    v = H.grade(inst, "moves = [[1, 0, 1]]", truncated=True)         # a closed list is complete, even at the budget
    assert (v.outcome, v.first_error_step) == ("wrong", None)


def test_a_program_that_fills_the_moves_is_no_answer():
    H = get_task("hanoi")
    text = ("moves = []\ndef solve(n, a, b, c):\n    if n == 0: return\n    solve(n - 1, a, c, b)\n"
            "    moves.append([n, a, b])\n    solve(n - 1, c, b, a)\nsolve(3, 0, 2, 1)\n")
    v = H.grade(H.instance(3), text)
    assert v.outcome == "no_answer" and v.reason.startswith("the final answer is a program")
    A = get_task("addition")
    v = A.grade(A.instance(2), "answer = 0\nfor t in (12, 30):\n    answer += t")
    assert v.outcome == "no_answer" and "program" in v.reason
