"""The library's layering, as documented on the home page (nbs/index.ipynb, "The layers"), holds in the code:
every module imports only the modules its row allows, there are no import cycles, and no module imports another
module's `_private` names."""
import ast
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "adaptbench"


def documented_layers() -> dict[str, set[str]]:
    "Module → allowed imports, read from the layers table of nbs/index.ipynb (`anything` → None)."
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    table = text.split("## The layers", 1)[1]
    allowed = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"): continue
        mods = re.findall(r"`([a-z_]+)`", cells[0])
        may = None if "anything" in cells[-1] else set(re.findall(r"`([a-z_]+)`", cells[-1]))
        for m in mods: allowed[m] = may
    return allowed


def _sources():
    "Every module file of the package (following the `kernels` link to the exported kernels)."
    for d, _, files in os.walk(PKG, followlinks=True):
        if "__pycache__" in d: continue
        yield from (Path(d) / f for f in sorted(files) if f.endswith(".py") and f != "_modidx.py")


def _imports(f: Path):
    "(target module, imported name) for every adaptbench-internal `from ... import` in file `f`."
    rel = f.relative_to(PKG).with_suffix("").parts
    pkg = list(rel[:-1])
    for node in ast.walk(ast.parse(f.read_text())):
        if not isinstance(node, ast.ImportFrom): continue
        if node.level:
            base = pkg[:len(pkg) - (node.level - 1)]
            parts = base + (node.module.split(".") if node.module else [])
        elif node.module and node.module.split(".")[0] == "adaptbench":
            parts = node.module.split(".")[1:]
        else: continue
        for a in node.names: yield (".".join(parts) if parts else a.name), a.name


def module_graph() -> dict[str, set[str]]:
    "Top-level module → the top-level adaptbench modules it imports."
    g = {}
    for f in _sources():
        me = f.relative_to(PKG).parts[0].removesuffix(".py")
        g.setdefault(me, set())
        for tgt, _ in _imports(f):
            t = tgt.split(".")[0]
            if t != me: g[me].add(t)
    g.pop("__init__", None)
    return g


def test_every_module_is_documented():
    doc, g = documented_layers(), module_graph()
    assert set(g) <= set(doc), f"modules missing from the layers table of nbs/index.ipynb: {sorted(set(g) - set(doc))}"
    assert set(doc) <= set(g), f"the layers table names modules that do not exist: {sorted(set(doc) - set(g))}"


def test_imports_follow_the_layers():
    doc, g = documented_layers(), module_graph()
    bad = {m: sorted(g[m] - doc[m] - {"core"}) for m in g if doc.get(m) is not None and g[m] - doc[m] - {"core"}}
    assert not bad, f"imports the layers table does not allow (module → modules): {bad}"


def test_no_import_cycles():
    g = module_graph()
    state, cycles = {}, []
    def visit(m, path):
        state[m] = 1
        for t in g.get(m, ()):
            if state.get(t) == 1: cycles.append(path + [t])
            elif not state.get(t): visit(t, path + [t])
        state[m] = 2
    for m in g:
        if not state.get(m): visit(m, [m])
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_imports_across_modules():
    bad = []
    for f in _sources():
        me = ".".join(f.relative_to(PKG).with_suffix("").parts)
        for tgt, name in _imports(f):
            if name.startswith("_") and not name.startswith("__") and tgt != me:
                bad.append(f"{me} imports {tgt}.{name}")
    assert not bad, "private names imported across modules: " + "; ".join(bad)


# Attributes of a transformers model's insides: only `decoding` (the hand-stepped decoder) and `models` (the loader and
# the uniform view) may touch them, so that a transformers change or a new model family is fixed in one place.
INTERNALS = {"self_attn", "mlp", "rotary_emb", "embed_tokens", "input_layernorm", "post_attention_layernorm",
             "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "q_norm", "k_norm",
             "_modules"}
MAY_REACH_IN = {"decoding", "models"}


def _reaches_in(f: Path) -> list[str]:
    "Lines of `f` that read a model internal: an attribute in INTERNALS, or `<x>.model.model`."
    out = []
    for node in ast.walk(ast.parse(f.read_text())):
        if not isinstance(node, ast.Attribute): continue
        if node.attr in INTERNALS:
            out.append(f"{node.lineno}: .{node.attr}")
        elif node.attr == "model" and isinstance(node.value, ast.Attribute) and node.value.attr == "model":
            out.append(f"{node.lineno}: .model.model")
    return out


def test_only_the_decoder_reaches_into_model_internals():
    bad = {}
    for f in _sources():
        me = f.relative_to(PKG).parts[0].removesuffix(".py")
        if me in MAY_REACH_IN or me in ("kernels", "plasticity"): continue   # plasticity's own small nets are not transformers
        if hits := _reaches_in(f): bad[str(f.relative_to(ROOT))] = hits
    assert not bad, ("modules other than `decoding` read a model's internals (step the decoder through "
                     f"adaptbench.decoding instead): {bad}")


def test_the_internals_check_sees_a_planted_reach(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def g(lm):\n    return lm.model.model.layers[0].self_attn\n")
    assert _reaches_in(f) == ["2: .self_attn", "2: .model.model"]
