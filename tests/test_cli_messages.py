"""Clear errors for a newcomer's mistakes: a missing file, a misspelled backend."""

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
