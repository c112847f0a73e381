"""The engine `auto` picks by what the CPU can do, with the CPU's flags faked: never bf16 without bf16
instructions, a warning when a user forces it, and an ISA cap counted as the CPU itself."""
import pytest

from defusion_rt.engines import auto_choice, cpu

AVX2 = ["avx2", "fma"]
AVX512 = AVX2 + ["avx512f", "avx512_vnni"]
AVX512_BF16 = AVX512 + ["avx512_bf16"]
AMX = AVX512_BF16 + ["amx_tile", "amx_bf16", "amx_int8"]


@pytest.fixture
def flags(monkeypatch):
    """Fake /proc/cpuinfo's flags (and clear any ISA cap the environment sets)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(cpu, "_warned", set())

    def fake(have):
        monkeypatch.setattr(cpu, "isa_flags", lambda: list(have))
    return fake


@pytest.mark.parametrize("have, cls", [([], "other"), (["avx2"], "other"), (AVX2, "avx2"), (AVX512, "avx512"),
                                       (AVX512_BF16, "avx512_bf16"), (AMX, "amx")])
def test_class_from_flags(flags, have, cls):
    flags(have)
    assert cpu.cpu_class() == cls
    assert cpu.native_bf16() == (cls in ("avx512_bf16", "amx"))


def test_isa_cap_lowers_the_class(flags, monkeypatch):
    flags(AMX)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu.cpu_class() == "avx2" and not cpu.native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu.cpu_class() == "avx512_bf16"
    flags(AVX2)  # a cap never raises the class
    assert cpu.cpu_class() == "avx2"


@pytest.mark.parametrize("have", [AVX2, AVX512, AVX512_BF16, AMX])
@pytest.mark.parametrize("openvino", [True, False])
def test_auto_follows_the_measured_table(flags, have, openvino):
    flags(have)
    table = cpu.FASTEST if openvino else cpu.TORCH_FASTEST
    assert cpu.fastest(openvino=openvino) == table[cpu.cpu_class()]
    engine, precision = cpu.fastest(openvino=openvino)
    assert precision != "bf16" or cpu.native_bf16()


@pytest.mark.parametrize("have", [AVX2, AVX512, AVX512_BF16])
@pytest.mark.parametrize("engine", [None, "eager", "compile", "export", "onnx", "openvino"])
def test_auto_precision_never_emulates_bf16(flags, have, engine):
    flags(have)
    pick = auto_choice("cpu", "ir-vis", None, engine)
    assert pick["model"] == "defusion_fast"
    assert pick["engine"] == (engine or cpu.fastest()[0])
    if not cpu.native_bf16():
        assert pick["precision"] != "bf16"
    if pick["precision"] == "int8":
        assert pick["engine"] == "openvino"
    if engine == "onnx":
        assert pick["precision"] == "fp32"


def test_forced_bf16_on_avx2_warns_once(flags, capsys):
    flags(AVX2)
    cpu.warn_if_emulated("bf16")
    cpu.warn_if_emulated("bf16")
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "no bf16 instructions" in err and "emulated" in err
    flags(AVX512_BF16)
    cpu.warn_if_emulated("fp32")
    assert capsys.readouterr().err == ""


def test_bench_records_class_and_auto_engine():
    from defusion_rt.bench.telemetry import machine
    m = machine()
    assert m["cpu_class"] in cpu.CLASSES
    assert m["auto_cpu_engine"] == "/".join(cpu.fastest())
    assert isinstance(m["isa"], list)


def test_auto_on_cuda_is_the_compiled_fp16_engine(monkeypatch):
    """The saved H200 bench: compile fp16 2,557 FPS against eager fp16 1,006 (no GPU needed to choose)."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    pick = auto_choice("auto", "ir-vis")
    assert (pick["engine"], pick["precision"]) == ("compile", "fp16")
    assert auto_choice("cuda", "ir-vis", engine="tensorrt")["engine"] == "tensorrt"
