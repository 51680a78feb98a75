"""The opt-in model store on a fake split wheel: assemble in order, verify the hash, refuse a mismatch (nothing
registered), and `load_model` resolving a registered name; plus the CLI hook."""
import hashlib
import zipfile

import pytest

import adaptbench.models as models
from adaptbench.cli import main
from adaptbench.core import AdaptbenchError
from adaptbench.model_store import (STORE, ModelStoreError, SplitGGUF, assemble_parts, find_parts, get_model,
                                    make_fake_split, read_registry, registered_path)

DATA = bytes(range(256)) * 37 + b"tail"


def test_assemble_verify_register(tmp_path):
    fake = make_fake_split(tmp_path / "model_store" / "wheels", DATA, parts=4)
    p = get_model("fake", cache_dir=tmp_path, store={"fake": fake})
    assert p.read_bytes() == DATA
    assert read_registry(tmp_path)["fake"]["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert registered_path("fake", tmp_path) == p
    assert not list(p.parent.glob(".*partial"))


def test_hash_mismatch_leaves_nothing(tmp_path):
    fake = make_fake_split(tmp_path / "model_store" / "wheels", DATA, parts=3)
    bad = SplitGGUF(fake.package, fake.version, fake.parts, "f" * 64)
    with pytest.raises(ModelStoreError, match="hash mismatch"):
        get_model("bad", cache_dir=tmp_path, store={"bad": bad})
    assert registered_path("bad", tmp_path) is None and "bad" not in read_registry(tmp_path)
    assert not list((tmp_path / "model_store" / "gguf").iterdir())
    assert issubclass(ModelStoreError, AdaptbenchError)


def test_parts_out_of_order_or_missing(tmp_path):
    fake = make_fake_split(tmp_path / "w", DATA, parts=3)
    w = find_parts(fake, tmp_path / "w")
    with pytest.raises(ModelStoreError, match="part01.bin"):
        assemble_parts([w[2], w[1], w[3]], tmp_path / "x.gguf", None)
    with zipfile.ZipFile(w[3]) as z: assert z.namelist()[-1].endswith("data/part03.bin")


def test_load_model_consults_registry(tmp_path, monkeypatch):
    fake = make_fake_split(tmp_path / "model_store" / "wheels", DATA, parts=2)
    p = get_model("fake-gguf", cache_dir=tmp_path, store={"fake-gguf": fake})
    from adaptbench.models import tiny_random_llama
    seen = []
    def fake_load(gguf, cache_dir, dtype):
        seen.append(gguf); m, t = tiny_random_llama(); return m, t, f"GGUF {gguf}"
    monkeypatch.setattr(models, "load_gguf", fake_load)
    lm = models.load_model("fake-gguf", device="cpu", cache_dir=tmp_path)
    assert seen == [p] and lm.source == f"GGUF {p}"


def test_pinned_hashes_and_cli(tmp_path, capsys):
    assert all(len(e.sha256 or "") == 64 for e in STORE.values())
    assert main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    assert "qwen2.5-coder-0.5b" in capsys.readouterr().out
    assert main(["models", "get", "no-such-model", "--cache-dir", str(tmp_path)]) == 2
    assert "available" in capsys.readouterr().err


def test_a_file_damaged_after_registration_is_not_returned_as_ready(tmp_path, capsys):
    "Truncated: refused by size (always checked, also by load_model); same size, other bytes: refused by the hash on demand."
    fake = make_fake_split(tmp_path / "model_store" / "wheels", DATA, parts=2)
    p = get_model("fake", cache_dir=tmp_path, store={"fake": fake})
    assert read_registry(tmp_path)["fake"]["size"] == len(DATA)
    p.write_bytes(DATA[:-10])                                              # truncated after registration
    with pytest.raises(ModelStoreError, match="damaged after it was registered.*models get fake"):
        registered_path("fake", tmp_path)
    with pytest.raises(ModelStoreError, match="damaged after it was registered"):
        models.load_model("fake", device="cpu", cache_dir=tmp_path)      # not "found" as a model, not "not available"
    p.write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))                       # same size, one bit flipped
    assert registered_path("fake", tmp_path) == p                          # the size check cannot see it ...
    with pytest.raises(ModelStoreError, match="changed after it was registered"):
        registered_path("fake", tmp_path, verify=True)                     # ... the hash on demand does
    assert get_model("fake", cache_dir=tmp_path, store={"fake": fake}).read_bytes() == DATA   # get repairs it
    assert "assembling it again" in capsys.readouterr().err
