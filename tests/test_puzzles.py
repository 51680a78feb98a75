"""Puzzle-specific checks over every registered puzzle, solver optimality, River Crossing solvability, parser fuzzing.

The task contract that every task passes (solver → text → parse → grade is solved; every corruption is caught at
its step) is `tests/test_tasks.py`.  Here, still with no per-puzzle code: the solver's answer has length
`min_moves` and ends in the goal state; the moves parser reads the answer in many written forms; and over each
puzzle's corruption domain (`Puzzle.candidate_moves`) the two views of its rules agree — `step` (the grader)
accepts a move exactly when `legal_moves` (the solver's successor function) lists it — and every rejected move is
reported at its step with `step`'s reason and the state before it.
"""
from __future__ import annotations

import json
import string
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from adaptbench.puzzles import ParseResult, PuzzleError, get_puzzle, list_puzzles

PUZZLES = list_puzzles()


def instances(name):
    "The puzzle's own contract-test instances (`test_sizes` × `test_seeds`)."
    P = get_puzzle(name)
    return [P.instance(n, seed=s) for n in P.test_sizes for s in P.test_seeds]


@pytest.mark.parametrize("name", PUZZLES)
def test_solver_answer_validates_with_min_moves(name):
    P = get_puzzle(name)
    for inst in instances(name):
        sol = P.solve(inst)
        if not P.is_solvable(inst):
            assert sol is None and P.min_moves(inst) is None
            continue
        v = P.validate(inst, sol)
        assert v.solved and v.first_error_step is None and v.error is None, (inst.id, v)
        assert v.valid_prefix_len == len(sol) == P.min_moves(inst)
        assert v.final_state == inst.goal


ROUND_TRIPS = [
    "{ans}",
    "Let me think.\nFirst I move the small one.\n\n```python\n{ans}\n```\n",
    "<think>\nmaybe moves = [[9, 9, 9]]\n</think>\nThe answer:\n{ans}",
    "A first attempt: moves = [[0]] is wrong.\nFinal answer:\n**{ans}**",
    "{ans_single_quotes}\n",
    "{ans_multiline}",
]


@pytest.mark.parametrize("name", PUZZLES)
@pytest.mark.parametrize("template", ROUND_TRIPS)
def test_round_trip_through_prompt_format_and_parser(name, template):
    P = get_puzzle(name)
    for inst in instances(name):
        if not P.is_solvable(inst): continue
        sol = P.solve(inst)
        ans = P.format_moves(sol)
        assert ans.startswith("moves = ")
        multiline = "moves = [\n" + ",\n".join("    " + json.dumps(m) for m in sol) + "\n]"
        text = template.format(ans=ans, ans_single_quotes=ans.replace('"', "'"), ans_multiline=multiline)
        r = P.parse(text)
        assert r.ok, (inst.id, r.reason, text)
        assert r.moves == sol, (inst.id, text)
        assert P.validate(inst, r.moves).solved
        # the prompt states the answer form the parser reads
        system, user = P.prompt(inst, "direct")
        assert "moves = [" in system["content"] and "moves = [...]" in user["content"]


@pytest.mark.parametrize("name", PUZZLES)
def test_every_single_move_corruption_is_caught_at_its_step(name):
    P = get_puzzle(name)
    checked = 0
    for inst in instances(name):
        if not P.is_solvable(inst): continue
        sol = P.solve(inst)
        state = inst.initial
        for i, move in enumerate(sol):
            legal = {P.move_key(m): t for m, t in P.legal_moves(inst, state)}
            for c in P.candidate_moves(inst):
                new, why = P.step(inst, state, c)
                # the grader's rules and the solver's successor function agree on this move
                assert (not why) == (P.move_key(c) in legal), (inst.id, i, c, why)
                if not why: assert new == legal[P.move_key(c)]
                if P.move_key(c) == P.move_key(move): continue
                v = P.validate(inst, sol[:i] + [c] + sol[i + 1:])
                if why:
                    assert (v.first_error_step, v.valid_prefix_len, v.solved) == (i + 1, i, False), (inst.id, i, c, v)
                    assert v.error.startswith(f"move {i + 1} (") and why in v.error
                    assert v.final_state == state
                else:
                    assert v.first_error_step is None or v.first_error_step > i + 1
                checked += 1
            state, why = P.step(inst, state, move)
            assert not why
    assert checked > 100


def test_hanoi_and_checker_solution_lengths_match_the_formulas():
    H, C = get_puzzle("hanoi"), get_puzzle("checker_jumping")
    for n in range(1, 15):
        inst = H.instance(n)
        sol = H.solve(inst)
        assert len(sol) == 2**n - 1 == H.min_moves(inst) and H.validate(inst, sol).solved
    for n in range(1, 25):
        inst = C.instance(n)
        sol = C.solve(inst)
        assert len(sol) == (n + 1) ** 2 - 1 == C.min_moves(inst) and C.validate(inst, sol).solved


def test_blocks_world_astar_is_optimal_against_bfs():
    from adaptbench.puzzles.base import bfs
    B = get_puzzle("blocks_world")
    for n in range(1, 6):
        for seed in range(6):
            inst = B.instance(n, seed=seed)
            assert len(B.solve(inst)) == len(bfs(B, inst)) == B.min_moves(inst)


# --- River Crossing solvability: an independent brute force ---------------------------------------------------------

def brute_force_solvable(n: int, k: int) -> int | None:
    "Shortest number of crossings by BFS over bitmask states, written independently of the puzzle module."
    full = (1 << (2 * n)) - 1                        # bit i: actor i+1; bit n+i: agent i+1

    def safe(mask):
        actors, agents = mask & ((1 << n) - 1), mask >> n
        return agents == 0 or actors & ~agents == 0   # no agent, or every actor has their own agent

    start, goal = (full, 0), (0, 1)
    dist, queue = {start: 0}, deque([start])
    while queue:
        left, side = queue.popleft()
        if (left, side) == goal: return dist[(left, side)]
        bank = left if side == 0 else full & ~left
        sub = bank
        while sub:                                   # every non-empty subset of the bank
            if bin(sub).count("1") <= k and safe(sub) and safe(bank & ~sub) and safe((full & ~bank) | sub):
                nxt = (left & ~sub if side == 0 else left | sub, 1 - side)
                if nxt not in dist:
                    dist[nxt] = dist[(left, side)] + 1
                    queue.append(nxt)
            sub = (sub - 1) & bank
    return None


def test_river_crossing_solvability_matches_exhaustive_search():
    R = get_puzzle("river_crossing")
    for n in range(1, 6):
        for k in range(1, 5):
            inst = R.instance(n, k=k)
            want = brute_force_solvable(n, k)
            assert R.is_solvable(inst) == (want is not None), (n, k)
            assert R.min_moves(inst) == want, (n, k)


def test_river_crossing_matches_the_classical_table():
    R = get_puzzle("river_crossing")
    for n in range(1, 7):
        assert R.is_solvable(R.instance(n, k=1)) is False
        assert R.is_solvable(R.instance(n, k=2)) == (n <= 3)
        assert R.is_solvable(R.instance(n, k=3)) == (n <= 5)
    assert R.is_solvable(R.instance(6, k=4))


# --- Programmer errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PUZZLES)
def test_programmer_errors_raise_value_errors(name):
    P = get_puzzle(name)
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="n must be an integer"): P.instance(bad)
    with pytest.raises(ValueError, match="unknown option"): P.instance(2, nonsense=1)
    with pytest.raises(ValueError, match="prompt style"): P.prompt(P.instance(1), "shout")
    with pytest.raises(ValueError, match="moves must be a list"): P.validate(P.instance(1), "moves = []")
    assert isinstance(PuzzleError("x"), ValueError)


def test_unknown_puzzle_names_the_known_ones():
    assert {"blocks_world", "checker_jumping", "hanoi", "river_crossing"} <= set(PUZZLES)
    with pytest.raises(ValueError, match="known puzzles: " + ", ".join(PUZZLES)):
        get_puzzle("sokoban")
    with pytest.raises(PuzzleError, match="unknown puzzle 'addition'"):   # a task, but not a puzzle
        get_puzzle("addition")
    assert get_puzzle("River Crossing") is get_puzzle("river")


# --- Parser fuzzing ----------------------------------------------------------------------------------------------------

FRAGMENTS = ["AB", "", "a1, A1", "[['A', 0, 1]]", "[['R', 1, 2]]", '[["a1"], "A1"]', "moves", "moves = ", "moves: ", "Moves=", "=", ":", "[", "]", "[[", "]]", "(", ")", ",", ", ", "'", '"',
             "“", "”", "‘", "`", "```", "```python\n", "1", "0", "2", "-3", "99999999999999999999", "1.5", "R", "B",
             "red", "a_1", "A1", "A", " ", "\n", "\t", "<think>", "</think>", "\\", "None", "True", "{", "}", "#",
             "moves = [[1, 0, 2]]", "moves = [", "é", "\x00", "\u200b"]


SMALL = {name: get_puzzle(name).instance(2) for name in PUZZLES}


def check_parse(text):
    "Parsing never raises, and whatever it returns can be validated without raising."
    for name in PUZZLES:
        P = get_puzzle(name)
        r = P.parse(text)
        assert isinstance(r, ParseResult)
        if r.ok:
            assert isinstance(r.moves, list) and r.reason == "" and r.start >= 0
            v = P.validate(SMALL[name], r.moves)
            assert v.solved or v.error
        else:
            assert r.moves is None and r.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_parser_never_raises_on_random_text(text):
    check_parse(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join))
def test_parser_never_raises_on_adversarial_text(text):
    check_parse(text)


json_scalars = st.one_of(st.integers(-10**6, 10**6), st.text(string.ascii_letters + "_ 0123456789", max_size=6))
json_moves = st.lists(st.one_of(st.lists(json_scalars, max_size=4), json_scalars), max_size=8)


@settings(max_examples=300, deadline=None)
@given(json_moves, st.text(max_size=80).filter(lambda s: "think>" not in s and "moves" not in s.lower()))
def test_parser_reads_back_any_formatted_list_after_any_prefix(moves, prefix):
    text = prefix + "\nmoves = " + json.dumps(moves)
    r = get_puzzle("hanoi").parse(text)
    if all(isinstance(m, list) for m in moves):   # hanoi only accepts lists of moves
        assert r.ok, r.reason
        def expect(x):   # the strings here hold only ASCII letters, digits, '_' and spaces
            return (int(x.strip()) if x.strip().isdigit() else x.strip()) if isinstance(x, str) else x
        assert r.moves == [[expect(x) for x in m] for m in moves]
    check_parse(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 400))
def test_parser_survives_deep_nesting_and_long_inputs(depth):
    check_parse("moves = " + "[" * depth + "1" + "]" * depth)
    check_parse("moves = [" + "[1, 0, 2], " * depth)
