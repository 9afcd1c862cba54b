"""benchmarks/gpu/gpu_check.py (issue 15), the GPU study's driver: every section runs end to end on
the CPU in --quick mode and its CSVs hold values that can be checked (FLOPs as FlopCounterMode
counts them, compiled rows really compiled, identical fp32 runs with zero gap, the projection's
rates taken from the right rows); the projection's arithmetic on hand-made rates."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from survey_lib.benchmark import GRIDS, estimate_seconds, plan
from survey_lib.benchmark.spec import available
from survey_lib.config import get_profile
from survey_lib.errors import ConfigError

GPU = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


gpu_check = _module()


# runs gpu_check.py as a script in a Python where `import medmnist` fails, as on a GPU machine
# that has torch but not medmnist
WITHOUT_MEDMNIST = ("import runpy, sys; sys.modules['medmnist'] = None; sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def quick(real_root, tmp_path_factory):
    """The folder written by one --quick run (reference fp32, candidates fp32 and bf16); its
    throughput section runs without medmnist (what the GPU machine lacks), the others with it."""
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "SURVEY_DATA_DIR": str(real_root), "SURVEY_OFFLINE": "1"}
    script = [str(GPU / "gpu_check.py"), "--quick", "--out", str(out)]
    for command in ([sys.executable, "-c", WITHOUT_MEDMNIST, *script, "--sections", "throughput"],
                    [sys.executable, *script, "--sections", "workers", "precision", "projection",
                     "--precisions", "fp32", "fp32", "bf16"]):
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        if "throughput" in command:  # a row that failed is a result in the CSV, not an exit code
            failed = pd.read_csv(out / "throughput.csv").query("status != 'ok'")
            assert failed.empty, failed[["kind", "variant", "status"]].to_string()
    return out


def test_sections_that_read_data_say_what_is_missing_before_measuring(tmp_path, monkeypatch):
    """Without medmnist only the throughput section can run: the others stop before measuring,
    naming the module, the sections and the way to bring it (SURVEY_WHEELS)."""
    for name in [m for m in sys.modules if m == "medmnist" or m.startswith("medmnist.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "medmnist", None)
    assert gpu_check.missing_modules(["throughput"]) == {}
    missing = gpu_check.missing_modules(["throughput", "workers", "precision", "projection"])
    assert missing == {"medmnist.dataset": ["workers", "precision"],
                       "medmnist.evaluator": ["workers", "precision"], "medmnist.info": ["projection"]}
    with pytest.raises(ConfigError, match=r"medmnist.dataset \(needed by precision\).*SURVEY_WHEELS"):
        gpu_check.main(["--quick", "--out", str(tmp_path), "--sections", "precision"])
    assert list(tmp_path.iterdir()) == []  # nothing measured, nothing written


def test_shell_script_parses():
    assert subprocess.run(["bash", "-n", str(GPU / "gpu_check.sh")]).returncode == 0


def test_full_check_refuses_to_write_cpu_numbers_into_the_gpu_folder():
    with pytest.raises(ConfigError, match="Pass --out DIR"):
        gpu_check.main(["--quick"])


def test_peak_table():
    """Names as torch.cuda.get_device_name reports them; dense bf16 datasheet peaks."""
    peak = gpu_check.peak_tflops
    assert peak("NVIDIA H100 80GB HBM3") == 989 and peak("NVIDIA H100 PCIe") == 756
    assert peak("NVIDIA H200") == 989
    assert peak("NVIDIA A100-SXM4-80GB") == 312 and peak("NVIDIA A100-SXM4-40GB") == 312
    assert peak("NVIDIA A100-PCIE-40GB") == 312 and peak("NVIDIA A100 80GB PCIe") == 312
    assert peak("NVIDIA H100 NVL") is None and peak("NVIDIA H200 NVL") is None
    assert peak("NVIDIA L4") is None
    assert "unknown" in gpu_check.peak_note("NVIDIA L4", None)
    assert "989 TFLOP/s" in gpu_check.peak_note("NVIDIA H200", 989.0)


def _pairs(*gaps, reference="fp32", candidate="bf16", n=200):
    return pd.DataFrame({"reference": reference, "candidate": candidate, "n": n,
                         "gap_per_200": list(gaps)})


def test_bf16_verdict_on_synthetic_gaps():
    """gap = robust images in bf16 minus in fp32, per 200 test images: positive means the bf16
    attack was weaker. The bar: never weaker by more than 1 image per 200 on any row."""
    verdict = gpu_check.bf16_verdict
    assert verdict(_pairs(0.0, 1.0, -5.0)) == "yes"  # exactly 1 per 200 passes; stronger is fine
    assert verdict(_pairs(0.0, 1.32, -5.0)) == "no"  # 2 of 303 images
    assert verdict(_pairs(0.0, 0.0, 3.0)) == "no"  # any one row decides
    assert verdict(_pairs(0.0, candidate="fp32")) is None  # fp32 against itself: no verdict


def test_throughput_counts_flops_and_compiles(quick):
    tp = pd.read_csv(quick / "throughput.csv")
    assert (tp["status"] == "ok").all(), tp["status"].tolist()
    assert set(tp["kind"]) == {"train", "fit", "pgd", "forward", "train_vmap"}
    at = lambda kind, batch=16, precision="fp32", variant="eager": tp[  # noqa: E731
        (tp["kind"] == kind) & (tp["batch"] == batch) & (tp["precision"] == precision)
        & (tp["variant"] == variant)].iloc[0]
    forward = at("forward")["flops_per_image"]
    # a training step: forward + backward (input and weight gradients) = 3x the forward FLOPs, less
    # the first convolution's unneeded input gradient
    assert at("train")["flops_per_image"] / forward == pytest.approx(3, abs=0.05)
    # PGD-20: 20 x (forward + input gradient) and the logits check on 8 images of the batch
    assert at("pgd")["flops_per_image"] / forward == pytest.approx(2 * 20 + 8 / 16, rel=0.02)
    assert at("pgd", batch=128)["flops_per_image"] / forward == pytest.approx(2 * 20 + 8 / 128, rel=0.02)
    compiled = tp[tp["variant"] == "dynamo-eager"]
    assert set(compiled["kind"]) == {"train", "fit", "pgd"}
    assert (compiled["graphs"] >= 1).all() and (compiled["graph_breaks"] == 0).all()
    assert tp.loc[tp["variant"] == "eager", "graphs"].isna().all()
    assert (tp["images_per_s"] > 0).all() and tp["fraction_of_bf16_peak"].isna().all()  # CPU: no peak


def test_workers_run_the_same_slice(quick):
    wk = pd.read_csv(quick / "workers.csv")
    assert wk["workers"].tolist() == [1, 2]
    assert wk["cells"].tolist() == [4, 4] and wk["models"].tolist() == [2, 2]  # 2 seeds x (clean, PGD)
    assert wk["models_trained"].tolist() == [2, 2]  # each run trains its models: a fresh cache
    assert wk["speedup"].iloc[0] == 1 and (wk["wall_seconds"] > 0).all()


def test_precision_identical_runs_have_zero_gap(quick):
    pr = pd.read_csv(quick / "precision.csv")
    assert sorted(set(pr["attack"])) == ["apgd_ce", "cw", "pgd"] and (pr["n"] == 48).all()
    assert sorted(set(pr["eps"])) == [2, 4]
    # the attacks matter: a model that is not collapsed, some images robust and some not
    assert ((pr["robust_reference"] > 0) & (pr["robust_reference"] < 48)).all()
    same = pr[pr["candidate"] == "fp32"]
    assert len(same) == 6 and (same["gap_images"] == 0).all() and (same["changed_predictions"] == 0).all()
    bf16 = pr[pr["candidate"] == "bf16"]
    assert len(bf16) == 6
    assert (bf16["gap_images"] == bf16["robust_candidate"] - bf16["robust_reference"]).all()
    assert bf16["gap_per_200"].tolist() == pytest.approx((bf16["gap_images"] * 200 / 48).tolist(), abs=0.01)
    verdict = "yes" if (bf16["gap_per_200"] <= 1).all() else "no"
    md = (quick / "gpu_check.md").read_text()
    assert f"bf16 never weaker than fp32 by more than 1 image per 200: **{verdict}**" in md


def test_projection_uses_the_measured_rows(quick, data_env, monkeypatch):
    monkeypatch.setenv("SURVEY_OFFLINE", "1")
    pj, tp = pd.read_csv(quick / "projection.csv"), pd.read_csv(quick / "throughput.csv")
    spec, _ = available(GRIDS["paper"])
    assert (pj["cells"] == len(plan(spec))).all() and (pj["epochs"] == 100).all()
    eager = pj[(pj["rates"] == "eager") & (pj["workers"] == 1)].iloc[0]
    rate = lambda kind, batch, precision="fp32": tp[(tp["kind"] == kind) & (tp["batch"] == batch) & (  # noqa: E731
        tp["precision"] == precision) & (tp["variant"] == "eager")]["images_per_s"].iloc[0]
    # training and its inner attack from the measured batch nearest 32 (16); attacks nearest 256 (128)
    assert eager["train_per_s"] == pytest.approx(rate("fit", 16))
    assert eager["inner_per_s"] == pytest.approx(20 * rate("pgd", 16), rel=1e-3)
    assert eager["grads_per_s"] == pytest.approx(20 * rate("pgd", 128), rel=1e-3)
    assert eager["forwards_per_s"] == pytest.approx(rate("forward", 128))
    md = (quick / "gpu_check.md").read_text()
    assert "## Projection" in md and "over 60 min" in md and "x86_64 CPU" in md


def _row(kind, variant, batch, precision, rate, flops=1e9):
    return {"kind": kind, "variant": variant, "batch": batch, "precision": precision,
            "images_per_s": rate, "flops_per_image": flops, "tflops": rate * flops / 1e12,
            "peak_bf16_tflops": 989.0, "fraction_of_bf16_peak": rate * flops / 1e12 / 989}


TP = pd.DataFrame([
    _row("train", "eager", 32, "bf16", 1500), _row("fit", "eager", 32, "bf16", 1000),
    _row("fit", "inductor", 32, "bf16", 2000), _row("fit", "eager", 512, "bf16", 9000),
    _row("pgd", "eager", 32, "bf16", 150), _row("pgd", "eager", 32, "fp32", 100),
    _row("pgd", "eager", 256, "fp32", 200), _row("pgd", "inductor", 512, "fp32", 400),
    _row("forward", "eager", 32, "fp32", 5000), _row("forward", "eager", 512, "fp32", 12000)])
WK = pd.DataFrame({"workers": [1, 4], "wall_seconds": [100.0, 40.0], "speedup": [1.0, 2.5]})


def test_projection_arithmetic(data_env, monkeypatch):
    monkeypatch.setenv("SURVEY_OFFLINE", "1")
    monkeypatch.delenv("SURVEY_ATTACK_PRECISION", raising=False)
    one, two = gpu_check.project(TP, WK, epochs=1), gpu_check.project(TP, WK, epochs=2)
    key = ["rates", "workers"]
    one, two = one.set_index(key), two.set_index(key)
    rates = one.loc[("eager", 1), ["train_per_s", "inner_per_s", "grads_per_s", "forwards_per_s"]]
    assert rates.tolist() == [1000, 20 * 150, 20 * 200, 12000]  # forward: 512 stands for 256, not 32
    assert one.loc[("best", 1), "train_per_s"] == 2000  # the compiled fit
    parts = [c for c in one.columns if c.startswith("s_")]
    attacks = [p for p in parts if p != "s_training"]
    for label in ("eager", "best"):  # training grows linearly with the epochs, attacks stay
        train1, train2 = one.loc[(label, 1), "s_training"], two.loc[(label, 1), "s_training"]
        assert train1 > 0 and train2 == pytest.approx(2 * train1, rel=1e-3)
        assert (two.loc[(label, 1), attacks] == one.loc[(label, 1), attacks]).all()
        total = one.loc[(label, 1), parts].sum()
        assert one.loc[(label, 1), "total_seconds"] == pytest.approx(total, abs=1)
        assert one.loc[(label, 4), "total_seconds"] == pytest.approx(total / 2.5, abs=1)
    # the floor: every image at the card's peak, a PGD-20 row's FLOPs shared by its 20 gradients
    spec, _ = available(GRIDS["paper"])
    at_peak = {"train": 989e3, "inner": 20 * 989e3, "grads": 20 * 989e3, "forwards": 989e3}
    floor = estimate_seconds(plan(spec), spec, Path("/nonexistent"), get_profile("paper").replace(epochs=1),
                             rates={"resnet18": at_peak})
    assert one.loc[("eager", 1), "floor_seconds"] == pytest.approx(floor, abs=0.1)
    assert one.loc[("eager", 4), "floor_seconds"] == pytest.approx(floor / 2.5, abs=0.1)


def test_estimate_seconds_with_measured_rates(data_env, monkeypatch):
    """BreastMNIST: 546 training, 78 validation, 156 test images; paper PGD-AT: 10 inner steps,
    PGD-10 checkpoint selection on the whole validation split each epoch."""
    monkeypatch.setenv("SURVEY_OFFLINE", "1")
    spec = GRIDS["paper"].replace(datasets=("breastmnist",), defenses=("nat", "pgd_at"), eval_eps=(8,),
                                  attacks=("clean", "pgd"))
    rates = {"resnet18": {"train": 100.0, "inner": 1000.0, "grads": 2000.0, "forwards": 4000.0}}
    parts = estimate_seconds(plan(spec), spec, Path("/nonexistent"), get_profile("paper").replace(epochs=3),
                             rates=rates, breakdown=True)
    assert parts["clean"] == pytest.approx(2 * 156 / 4000)
    assert parts["pgd"] == pytest.approx(2 * 156 * (20 / 2000 + 2 / 4000))
    nat, pgd_at = 546 / 100, 546 / 100 + 546 * 10 / 1000 + 78 * 10 / 2000  # one epoch
    assert parts["training"] == pytest.approx(3 * nat + 3 * pgd_at)
