"""Clear errors for a newcomer's mistakes: a missing file, a misspelled backend."""

from pathlib import Path

import pytest

from bench.__main__ import main
from kernels import parse_backend_name


@pytest.mark.parametrize("command", ["show", "plot"])
def test_a_missing_file_is_named_with_its_argument(tmp_path, capsys, command):
    missing = tmp_path / "nope.csv"
    assert main([command, str(missing)]) == 2
    assert capsys.readouterr().err == f"error: FILE: no such file: {missing}\n"
    assert main([command, str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: FILE: expected a result .csv file, got the directory {tmp_path}\n"


def test_a_misspelled_variant_lists_the_variants_and_suggests_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--backends", "numpy,numba:blsa"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--backends: unknown ['numba:blsa'] (did you mean 'numba:blas'" in err
    known = err.split("; known: ")[1].strip().split(", ")
    assert {"numpy", "numba", "torch_cpu", "numba:fused", "numba:parallel", "numba:blas@openblas"} <= set(known)
    with pytest.raises(ValueError, match=r"unknown name 'torch_cpy' \(did you mean 'torch_cpu'"):
        parse_backend_name("torch_cpy")
    with pytest.raises(ValueError, match=r"unknown name 'fortran'; known"):  # nothing close: no guess
        parse_backend_name("fortran")


def test_every_misspelled_backend_gets_a_suggestion_and_runs_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--backends", "numpi,torch"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m bench run ")  # run's usage, not the top level's
    assert "numpi: did you mean 'numpy'" in err and "torch: did you mean 'torch_cpu'" in err


def test_a_where_names_the_columns_the_letters_and_the_values_there(capsys):
    assert main(["run", "--grid", "smoke", "--where", "T=50"]) == 2
    err = capsys.readouterr().err
    assert "--where: unknown column 'T' (did you mean 'timesteps'?); columns: case_id, mode, " in err
    assert main(["run", "--grid", "smoke", "--where", "timesteps=50"]) == 2
    assert "no case of grid smoke matches timesteps=50; in that grid timesteps takes 4, 5" in capsys.readouterr().err


def test_grids_wraps_each_description_and_cuts_none(capsys):
    from bench.commands.grids import grid_lines
    from bench.grids import GRIDS

    lines = grid_lines(60)
    assert all(len(line) <= 60 for line in lines if " " in line.strip())  # a word longer than a line stays whole
    text = " ".join(line.strip() for line in lines)
    for make in GRIDS.values():
        assert " ".join(make.__doc__.strip().split("\n\n")[0].split()) in " ".join(text.split())


@pytest.mark.parametrize("command", ["charrnn", "merge"])
def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys, command, monkeypatch):
    """--out under a file or in /proc: exit 2, one line naming --out, and nothing trained or read."""
    from bench.commands import charrnn

    monkeypatch.setattr(charrnn, "train", lambda *a, **k: pytest.fail("trained before checking --out"))
    (tmp_path / "file").write_text("x")
    part = tmp_path / "part.csv"
    part.write_text("not read either")
    for out in (tmp_path / "file" / "x.csv", Path("/proc/rnn-bench.csv")):
        args = ["charrnn", "--backends", "numpy", "--out", str(out)] if command == "charrnn" else \
            ["merge", str(part), "--out", str(out)]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out: ") and err.count("\n") == 1, err


def test_charrnn_names_a_skipped_backend_once(capsys):
    assert main(["charrnn", "--backends", "numpy,torch_cuda", "--epochs", "1"]) == 0
    skipped = [line for line in capsys.readouterr().out.splitlines() if "skipped" in line]
    from kernels import availability

    if availability("torch_cuda") is not None:
        assert skipped == [f"torch_cuda: skipped: {availability('torch_cuda')}"]
