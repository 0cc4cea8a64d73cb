"""machine_id: one slug per hardware kind, CPU generations told apart by their vector extension."""

import cpuinfo
import pytest

from bench import environment


@pytest.fixture
def cpu(monkeypatch):
    def set_cpu(brand, flags):
        monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: {"brand_raw": brand, "flags": flags})
        environment.cpu_model.cache_clear()
        environment.vector_isa.cache_clear()
    monkeypatch.delenv("RNN_BENCH_MACHINE_ID", raising=False)
    monkeypatch.setattr(environment.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(environment, "memory_gib", lambda: 24)
    yield set_cpu
    environment.cpu_model.cache_clear()
    environment.vector_isa.cache_clear()


@pytest.mark.parametrize("flags, expected", [
    (["fma", "avx", "avx2", "avx512f", "avx512bw"], "amd-epyc-avx512-2c-24g"),
    (["fma", "avx", "avx2"], "amd-epyc-avx2-2c-24g"),
    (["sse2", "avx"], "amd-epyc-avx-2c-24g"),
    (["asimd"], "amd-epyc-2c-24g"),
])
def test_machine_id_names_the_vector_extension(cpu, flags, expected):
    cpu("AMD EPYC", flags)
    assert environment.machine_id() == expected


def test_machine_id_slug_and_override(cpu, monkeypatch):
    cpu("Intel(R) Xeon(R) CPU @ 2.80GHz", ["avx2"])
    assert environment.machine_id() == "intel-xeon-cpu-2-80ghz-avx2-2c-24g"
    monkeypatch.setenv("RNN_BENCH_MACHINE_ID", "lab-box-7")
    assert environment.machine_id() == "lab-box-7"
