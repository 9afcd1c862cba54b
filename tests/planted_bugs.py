"""Plant known bugs in survey_lib and check that the tests written against them fail.

Each entry of ``BUGS`` names a file, an exact piece of its text (it must occur exactly once), the
buggy replacement and the pytest node ids that must fail with the bug. The script copies the working
tree (tracked files and untracked ones git does not ignore: no .venv, runs/ or results/) into a
temporary folder and works only there, so the checkout is never modified. It first runs every
listed test on the unmodified copy (a test that fails without the bug proves nothing: the script
stops), then, for each bug, applies it, runs that bug's tests with this checkout's Python and
$SURVEY_DATA_DIR, restores the file and prints one line: ``caught`` when every listed test failed,
``NOT caught`` otherwise (an error in a fixture or a timeout is not a catch). Exit status 1 when a
bug is not caught or a listed test fails without any bug. The models the tests' session fixtures
train are cached once for all runs, except for bugs in training code (``TRAINING_CODE``), whose
runs train afresh. Not collected by pytest (its name does not start with ``test_``).

    SURVEY_DATA_DIR=<data dir> .venv/bin/python tests/planted_bugs.py            # every bug
    SURVEY_DATA_DIR=<data dir> .venv/bin/python tests/planted_bugs.py dagger 3d  # ids containing either
    .venv/bin/python tests/planted_bugs.py --list

To guard a new test, append a ``Bug`` whose mutation the test (and, ideally, no older test) catches.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    id: str
    file: str  # relative to the repository root
    old: str  # exact text, found exactly once in the file
    new: str  # what the bug puts in its place
    tests: tuple[str, ...]  # pytest node ids that must fail with the bug
    why: str = ""


VALIDATION = "tests/test_validation.py::"
CACHES = "tests/test_caches.py::"
BUGS: list[Bug] = [
    # ================================================================== issue 11, item 6: the tests
    # that replaced vacuous ones
    # ------------------------------------------------------------------ report: † and ‡ marks
    Bug("dagger-from-below-majority", "survey_lib/report/tables.py",
        'mark = (COLLAPSED if r.get("collapsed") else "")',
        'mark = (COLLAPSED if r.get("below_majority") else "")',
        ("tests/test_report.py::test_below_majority_and_collapse_marks",),
        "† marks the cells under the majority rate instead of the collapsed ones"),
    Bug("table-below-majority-at-the-rate", "survey_lib/report/tables.py",
        'out["below_majority"] = bool(out["acc"] < out["majority_rate"])',
        'out["below_majority"] = bool(out["acc"] <= out["majority_rate"])',
        ("tests/test_report.py::test_below_majority_and_collapse_marks",),
        "‡ on a model exactly at the majority-class rate"),
    # ------------------------------------------------------------------ train: loss and augmentation
    Bug("fit-seg-without-dice", "survey_lib/losses.py",
        "return lambda logits, y: F.cross_entropy(logits.float(), y) + dice_loss(logits, y)",
        "return lambda logits, y: F.cross_entropy(logits.float(), y)",
        ("tests/test_train.py::test_fit_uses_the_loss_of_the_task",),
        "segmentation trained on cross-entropy alone"),
    Bug("fit-multilabel-ce", "survey_lib/losses.py",
        "return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float(), y.float())",
        "return lambda logits, y: F.cross_entropy(logits.float(), y.float())",
        ("tests/test_train.py::test_fit_uses_the_loss_of_the_task",),
        "multi-label trained with soft-label cross-entropy (runs silently on float targets)"),
    Bug("dice-background-channel", "survey_lib/losses.py",
        "p = torch.softmax(logits.float(), dim=1)[:, 1]",
        "p = torch.softmax(logits.float(), dim=1)[:, 0]",
        ("tests/test_train.py::test_fit_uses_the_loss_of_the_task",),
        "soft Dice of the background channel instead of the lesion"),
    Bug("augment-mask-not-flipped", "survey_lib/train.py",
        "y = torch.where(flip.view(-1, *[1] * (y.ndim - 1)), y.flip(-1), y)",
        "y = y",
        ("tests/test_train.py::test_augment_moves_masks_with_images",),
        "the image is flipped, its mask is not"),
    Bug("augment-mask-not-rotated", "survey_lib/train.py",
        "if y is not None and y.ndim == 3:",
        "if y is not None and y.ndim == 4:",
        ("tests/test_train.py::test_augment_moves_masks_with_images",),
        "the image is rotated, its mask is not"),
    # ------------------------------------------------------------------ benchmark: determinism
    Bug("benchmark-unseeded-init", "survey_lib/train.py",
        '    seed_everything(config["seed"])\n    return build_model(config["model"]',
        '    return build_model(config["model"]',
        ("tests/test_benchmark.py::test_killed_run_resumes_without_recomputing",),
        "initial weights drawn from whatever state the global RNG is in (training not reproducible)"),
    # ------------------------------------------------------------------ defenses
    Bug("purification-adaptive-swapped", "survey_lib/defenses/purification.py",
        "torch.where(torch.from_numpy(fooled).view(-1, 1, 1, 1), x_white, x_naive)",
        "torch.where(torch.from_numpy(fooled).view(-1, 1, 1, 1), x_naive, x_white)",
        ("tests/test_purification.py::test_purifier_rows_match_attacks_run_here",),
        "adaptive row takes the better, not the worse, of the two attacks per image"),
    Bug("purification-adaptive-judged-undefended", "survey_lib/defenses/purification.py",
        "fooled = predictions(predict(wrapped, x_white), split.info.task)",
        "fooled = predictions(predict(model, x_white), split.info.task)",
        ("tests/test_purification.py::test_purifier_rows_match_attacks_run_here",),
        "adaptive row picks per image by the undefended model's prediction"),
    Bug("smoothing-never-abstains", "survey_lib/defenses/smoothing.py",
        "certified = torch.from_numpy(p_lower > 0.5)",
        "certified = torch.from_numpy(p_lower >= 0.0)",
        ("tests/test_smoothing.py::test_certificate_of_a_linear_classifier",),
        "CERTIFY answers (radius 0) where it should abstain"),
    Bug("smoothing-radius-without-sigma", "survey_lib/defenses/smoothing.py",
        "radius = torch.from_numpy(self.sigma * norm.ppf(np.clip(p_lower, 0.5, 1.0))).float()",
        "radius = torch.from_numpy(norm.ppf(np.clip(p_lower, 0.5, 1.0))).float()",
        ("tests/test_smoothing.py::test_certificate_of_a_linear_classifier",),
        "certified radius Φ⁻¹(p_A) instead of σ·Φ⁻¹(p_A)"),
    Bug("smoothing-curve-ignores-radius", "survey_lib/defenses/smoothing.py",
        "ok = (preds == y) & (radii >= r)",
        "ok = (preds == y) & (radii >= 0)",
        ("tests/test_smoothing.py::test_certificate_of_a_linear_classifier",),
        "certified accuracy at every radius is the accuracy at radius 0"),
    Bug("distillation-hard-labels", "survey_lib/defenses/distillation.py",
        "soft = F.softmax(teacher(x).float() / T, dim=1)",
        "soft = F.one_hot(y, 2).float()",
        ("tests/test_distillation.py::test_distillation_losses_by_value",),
        "student trained on the hard labels instead of the teacher's soft labels"),
    Bug("distillation-student-at-t1", "survey_lib/defenses/distillation.py",
        "return -(soft * F.log_softmax(m(x).float() / T, dim=1)).sum(1).mean()",
        "return -(soft * F.log_softmax(m(x).float(), dim=1)).sum(1).mean()",
        ("tests/test_distillation.py::test_distillation_losses_by_value",),
        "student's softmax at temperature 1 during distillation"),
    Bug("defense-registry-drops-options", "survey_lib/defenses/distillation.py",
        'return self.fn(dataset, profile, **{"progress": progress, **self.kwargs})',
        "return self.fn(dataset, profile, progress=progress)",
        ("tests/test_distillation.py::test_distillation_trains_teacher_and_student",),
        "make_defense(..., temperature=20).train ignores its options"),
    # ------------------------------------------------------------------ attacks: early stopping
    Bug("pgd-early-stop-never-stops", "survey_lib/attacks/whitebox.py",
        "                hit = self.success(logits, y[rows])",
        "                hit = self.success(logits, y[rows]) & False",
        ("tests/test_attacks.py::test_pgd_early_stop_keeps_exactly_the_never_fooled",
         "tests/test_evaluate.py::test_early_stopping_keeps_exactly_the_never_fooled"),
        "early_stop=True returns the last iterate, like full PGD"),
    Bug("pgd-early-stop-one-step-late", "survey_lib/attacks/whitebox.py",
        "rows, g = active[~hit], g[~hit]",
        "x_adv[active[hit]] = self.project(x_adv[active[hit]] + self.step_size * self._step(g[hit]), "
        "x[active[hit]])\n" + " " * 20 + "rows, g = active[~hit], g[~hit]",
        ("tests/test_attacks.py::test_pgd_early_stop_keeps_exactly_the_never_fooled",
         "tests/test_evaluate.py::test_early_stopping_keeps_exactly_the_never_fooled"),
        "a fooled example still takes the step of the iteration that found it fooled"),
    Bug("apgd-forgets-fooling-point", "survey_lib/attacks/autoattack.py",
        "out[rows[hit]], fooled[rows[hit]] = z[hit], True",
        "fooled[rows[hit]] = True",
        ("tests/test_attacks.py::test_apgd_early_stop_keeps_exactly_the_never_fooled",),
        "APGD flags a fooled example but does not keep the point that fooled it"),
    # ------------------------------------------------------------------ attacks: the cascade
    Bug("cascade-success-on-clean", "survey_lib/attacks/autoattack.py",
        "robust[idx] = ~self.success(model(x_adv[idx]), y[idx])",
        "robust[idx] = ~self.success(model(x[idx]), y[idx])",
        ("tests/test_attacks.py::test_autoattack_stages_match_the_attacks_run_one_by_one[pneumonia]",
         "tests/test_attacks.py::test_autoattack_stages_match_the_attacks_run_one_by_one[retina5]",
         "tests/test_evaluate.py::test_cascade_stages_summed_over_batches"),
        "stage counts judged on the clean images (they never fall)"),
    Bug("cascade-chains-stages", "survey_lib/attacks/autoattack.py",
        "x_adv[idx] = attack.perturb(model, x[idx], y[idx])",
        "x_adv[idx] = attack.perturb(model, x_adv[idx], y[idx])",
        ("tests/test_attacks.py::test_autoattack_stages_match_the_attacks_run_one_by_one[pneumonia]",
         "tests/test_attacks.py::test_autoattack_stages_match_the_attacks_run_one_by_one[retina5]",
         "tests/test_evaluate.py::test_cascade_stages_summed_over_batches"),
        "each stage starts from the previous stage's output instead of the clean image"),
    Bug("cascade-stages-not-summed", "survey_lib/evaluate.py",
        "stages[name] = stages.get(name, 0) + robust",
        "stages[name] = robust",
        ("tests/test_evaluate.py::test_cascade_stages_summed_over_batches",),
        "robust_metrics reports the stage counts of the last batch only"),
    # ------------------------------------------------------------------ attacks: 3D volumes
    Bug("fgsm-descends", "survey_lib/attacks/whitebox.py",
        "return self.project(x + self.eps * self.grad(model, x, y).sign(), x)",
        "return self.project(x - self.eps * self.grad(model, x, y).sign(), x)",
        ("tests/test_attacks.py::test_3d_attacks_on_a_linear_model",),
        "FGSM steps down the loss"),
    Bug("apgd-descends", "survey_lib/attacks/autoattack.py",
        "z = self.project(x_k[rows] + step * g_k[rows].sign(), x[rows])",
        "z = self.project(x_k[rows] - step * g_k[rows].sign(), x[rows])",
        ("tests/test_attacks.py::test_3d_attacks_on_a_linear_model",),
        "APGD steps down the loss"),
    # ================================================================== issue 11, items 1-5: the guards
    # ------------------------------------------------------------------ units and inputs
    Bug("eps-below-half-grey-accepted", "survey_lib/validation.py",
        "    if value < HALF_GREY:\n",
        "    if value < 0:\n",
        (VALIDATION + "test_pixel_scale_eps_is_refused_with_both_readings[0.03]",
         VALIDATION + "test_pixel_scale_eps_is_refused_with_both_readings[0.4999]"),
        "an L∞ ε under half a grey level (eps=0.03, a pixel-scale habit) runs a 0.03/255 attack"),
    Bug("images-range-unchecked", "survey_lib/validation.py",
        "if unit_range and (lo < 0 or hi > 1):",
        "if unit_range and (lo < -1 or hi > 255):",
        (VALIDATION + "test_bad_images_raise_everywhere[0..255-attack]",
         VALIDATION + "test_bad_images_raise_everywhere[0..255-predict]"),
        "0..255 images evaluated without a word"),
    Bug("float-labels-accepted", "survey_lib/validation.py",
        "    if y.is_floating_point():\n        onehot",
        "    if y.is_floating_point() and y.ndim == 2:\n        onehot",
        (VALIDATION + "test_bad_labels_raise[float class indices-attack]",),
        "float class indices on a single-label task silently cast to int"),
    Bug("split-unchecked", "survey_lib/data.py",
        '        validation.images(self.x, f"{self.info.flag} images")\n'
        "        self.y = validation.labels(",
        "        self.y = self.y if True else validation.labels(",
        (VALIDATION + "test_bad_labels_raise[float class indices-split (evaluate, robust_metrics, fit)]",
         VALIDATION + "test_bad_images_raise_everywhere[0..255-split (evaluate, robust_metrics, fit)]"),
        "Split.__post_init__ no longer checks images and labels (evaluate, robust_metrics, fit)"),
    # ------------------------------------------------------------------ caches
    Bug("cache-key-without-data", "survey_lib/train.py",
        "folder = runs_root() / config[\"dataset\"] / f\"{config['name']}-{config_hash(config)}\"",
        "folder = runs_root() / config[\"dataset\"] / f\"{config['name']}-"
        "{config_hash({k: v for k, v in config.items() if k != 'data'})}\"",
        (CACHES + "test_a_model_is_never_reused_on_other_data",),
        "the data file's fingerprint left out of the model cache key"),
    Bug("config-hash-not-normalised", "survey_lib/train.py",
        "json.dumps(_normalised(config), sort_keys=True)",
        "json.dumps(config, sort_keys=True)",
        (CACHES + "test_numbers_are_normalised_in_keys",),
        "eps=2 and eps=2.0 hash to two models"),
    Bug("force-keeps-last-pt", "survey_lib/train.py",
        'for stale in (last, folder / "val_log.json"):',
        'for stale in (folder / "val_log.json",):',
        (CACHES + "test_corrupt_partial_checkpoint",),
        "--force still resumes from (and trips on) a corrupt last.pt"),
    Bug("test-split-guard-off", "survey_lib/data.py",
        'if split == "test" and why:',
        'if split == "test" and why and False:',
        (CACHES + "test_test_split_is_locked_during_training",),
        "guard_test_split never raises: a recipe can look at the test split while training"),
    Bug("test-split-lock-off", "survey_lib/data.py",
        "token = _TEST_LOCK.set(why)",
        "token = _TEST_LOCK.set(None)",
        (CACHES + "test_test_split_is_locked_during_training",),
        "lock_test_split locks nothing"),
    Bug("training-not-locked", "survey_lib/train.py",
        'with lock_test_split(f"the training of {folder.name}"):',
        "with contextlib.nullcontext():",
        (CACHES + "test_test_split_is_locked_during_training",),
        "cached_run trains without locking the test split"),
    # ------------------------------------------------------------------ precision, metrics
    Bug("attacks-default-bf16", "survey_lib/train.py",
        'precision = precision or os.environ.get(PRECISION_ENV) or "fp32"',
        'precision = precision or os.environ.get(PRECISION_ENV) or "bf16"',
        ("tests/test_precision.py::test_attacks_run_in_fp32_unless_asked",),
        "attacks run in bf16 unless fp32 is asked for"),
    Bug("below-majority-at-the-rate", "survey_lib/metrics.py",
        '"below_majority": bool(acc < majority_rate(y_true))',
        '"below_majority": bool(acc <= majority_rate(y_true))',
        ("tests/test_metrics.py::test_majority_class_model_is_flagged",),
        "a model exactly at the majority-class rate flagged as below it"),
    # ------------------------------------------------------------------ paths
    Bug("notebook-relative-path", "notebooks/00_data_and_baselines.ipynb",
        r'display(Markdown(committed(\"baselines_cpu.md\").read_text()))',
        r'display(Markdown(open(\"../benchmarks/baselines_cpu.md\").read()))',
        ("tests/test_notebook_paths.py::test_same_outputs_from_the_root_and_from_notebooks",),
        "notebook 00 reads the committed baselines through '../benchmarks' (works only from notebooks/)"),
    # ------------------------------------------------------------------ results folder, claims
    Bug("row-path-unchecked", "survey_lib/benchmark/rows.py",
        "    if got != want:\n",
        "    if got != want and False:\n",
        ("tests/test_benchmark.py::test_a_row_is_accepted_only_at_its_own_path",),
        "a row at another cell's path is accepted"),
    Bug("claim-dead-pid-respected", "survey_lib/claims.py",
        'return claim["pid"] == os.getpid() or _alive(int(claim["pid"]))',
        "return True",
        ("tests/test_claims.py::test_a_dead_holders_claim_is_taken_over_at_once",),
        "a claim left by a killed process on this host blocks its cell for ever"),
    Bug("claim-pid-ignored", "survey_lib/claims.py",
        'if claim.get("host") == HOST and claim.get("pid"):',
        'if claim.get("host") == HOST and claim.get("pid") and False:',
        ("tests/test_claims.py::test_a_dead_holders_claim_is_taken_over_at_once",
         "tests/test_claims.py::test_a_live_holders_claim_is_respected"),
        "the holder's PID ignored: a dead process's claim waits for the 12 h timeout"),
]


def working_tree_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def copy_tree(root: Path, dest: Path) -> None:
    for rel in working_tree_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def python_of(root: Path) -> str:
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# a bug in these files could change what a cached model is: their runs get a fresh model cache
TRAINING_CODE = ("survey_lib/train.py", "survey_lib/losses.py", "survey_lib/data.py",
                 "survey_lib/models", "survey_lib/defenses")


def environment(copy: Path, runs: Path | None = None) -> dict:
    """The tests' environment: the copy's survey_lib; models trained by the tests' session fixtures
    cached in ``runs`` (shared between runs, so each model is trained once) or, when None, in a fresh
    temporary folder of each run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutated file is never shadowed by a stale .pyc
    env.pop("SURVEY_RUNS_DIR", None)
    env.pop("SURVEY_TEST_RUNS_DIR", None)
    if runs is not None:
        env["SURVEY_TEST_RUNS_DIR"] = str(runs)
    return env


def check_imports_copy(copy: Path) -> None:
    """The tests must import the copy's survey_lib, not the checkout's (editable install)."""
    out = subprocess.run([python_of(ROOT), "-c", "import survey_lib; print(survey_lib.__file__)"],
                         cwd=copy, env=environment(copy), capture_output=True, text=True, check=True)
    if not Path(out.stdout.strip()).resolve().is_relative_to(copy.resolve()):
        sys.exit(f"the copy imports survey_lib from {out.stdout.strip()}, not from {copy}")


STATUSES = ("PASSED", "FAILED", "ERROR", "XFAIL", "XPASS", "SKIPPED")


def outcome_of(test: str, output: str) -> str | None:
    """The status pytest's ``-rA`` summary gives ``test`` (node ids may contain spaces), or None."""
    for line in output.splitlines():
        for status in STATUSES:
            head = f"{status} {test}"
            if line == head or line.startswith(head + " - "):
                return status
    return None


def run_tests(copy: Path, tests: list[str], timeout: float,
              runs: Path | None = None) -> tuple[dict[str, str], str]:
    """{node id: PASSED | FAILED | ERROR | ...} of one pytest run in ``copy`` (missing: not run),
    and the tail of its output."""
    cmd = [python_of(ROOT), "-m", "pytest", *tests, "-q", "-rA", "-p", "no:cacheprovider",
           "-o", "addopts="]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=environment(copy, runs), capture_output=True,
                              text=True, timeout=timeout)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        output = f"timed out after {timeout:.0f} s\n{partial}"
    outcomes = {t: s for t in tests if (s := outcome_of(t, output))}
    return outcomes, "\n".join(output.splitlines()[-30:])


def apply(copy: Path, bug: Bug) -> str:
    """Write the bug into the copy; returns the original text of the file."""
    path = copy / bug.file
    text = path.read_text()
    if text.count(bug.old) != 1:
        raise SystemExit(f"{bug.id}: the text to replace occurs {text.count(bug.old)} times in "
                         f"{bug.file} (must be exactly once); update the entry")
    path.write_text(text.replace(bug.old, bug.new))
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only the bugs whose id contains one of these")
    parser.add_argument("--list", action="store_true", help="list the bugs and exit")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per pytest run")
    args = parser.parse_args()
    bugs = [b for b in BUGS if not args.only or any(s in b.id for s in args.only)]
    if args.list or not bugs:
        for b in BUGS:
            print(f"{b.id:40s} {b.file}: {b.why}")
        return 0 if bugs or args.list else 1
    with tempfile.TemporaryDirectory(prefix="planted_bugs_") as tmp:
        copy, runs = Path(tmp) / "repo", Path(tmp) / "runs"
        copy_tree(ROOT, copy)
        check_imports_copy(copy)
        for bug in bugs:  # every entry applies before anything runs
            count = (copy / bug.file).read_text().count(bug.old)
            if count != 1:
                raise SystemExit(f"{bug.id}: the text to replace occurs {count} times in {bug.file} "
                                 "(must be exactly once); update the entry")
        tests = sorted({t for b in bugs for t in b.tests})
        start = time.perf_counter()
        outcomes, tail = run_tests(copy, tests, args.timeout, runs)
        bad = [t for t in tests if outcomes.get(t) != "PASSED"]
        print(f"without any bug: {len(tests) - len(bad)}/{len(tests)} listed tests pass "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if bad:
            print("these fail (or do not run) without a bug; the bugs they guard are not tried: "
                  + ", ".join(f"{t} ({outcomes.get(t, 'not run')})" for t in bad))
            print(tail, flush=True)
        missed = []
        for bug in bugs:
            if any(t in bad for t in bug.tests):
                print(f"NOT tried  {bug.id:28s}     -    a listed test fails without the bug", flush=True)
                missed.append(bug.id)
                continue
            start = time.perf_counter()
            original = apply(copy, bug)
            try:
                shared = not bug.file.startswith(TRAINING_CODE)
                outcomes, tail = run_tests(copy, list(bug.tests), args.timeout, runs if shared else None)
            finally:
                (copy / bug.file).write_text(original)
            failed = [t for t in bug.tests if outcomes.get(t) == "FAILED"]
            caught = len(failed) == len(bug.tests)
            others = ", ".join(f"{t.split('::')[-1]} {outcomes.get(t, 'not run')}"
                               for t in bug.tests if t not in failed)
            print(f"{'caught    ' if caught else 'NOT caught'} {bug.id:28s} "
                  f"{time.perf_counter() - start:5.0f} s  {bug.why}"
                  + ("" if caught else f"  [{others}]"), flush=True)
            if not caught:
                missed.append(bug.id)
        print(f"{len(bugs) - len(missed)}/{len(bugs)} planted bugs caught"
              + (f"; not caught or not tried: {', '.join(missed)}" if missed else ""))
        return 1 if missed or bad else 0

if __name__ == "__main__":
    sys.exit(main())
