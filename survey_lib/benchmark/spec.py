"""What a benchmark grid runs: the survey's protocol as data (Dong et al. 2024, Sec. 6).

A grid row is one trained model — (dataset, defense, training ε, seed) — under one attack at one
evaluation ε. Each model is trained once and attacked at every evaluation ε of its dataset
(default {1, 2, 4, 8}/255). Names are case-insensitive (stored lower-case) as in the rest of the
package; numbers are normalised (ε = 2 and 2.0 are one cell).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .. import validation
from ..errors import ConfigError

DEFENSES = ("nat", "pgd_at", "trades", "mart", "hat", "fast_at")
# columns of a classification grid; "autoattack" is the standard AutoAttack, "aa_lite" a reduced one
ATTACKS = ("clean", "fgsm", "pgd", "cw", "autoattack", "aa_lite", "square", "simba", "transfer")
SEGMENTATION_ATTACKS = ("clean", "pgd_ce", "pgd_dice")  # PGD on the per-pixel CE / the Dice loss
VOLUME_ATTACKS = ("clean", "fgsm", "pgd")  # what the 3D rows run
MODEL_CELLS = ("clean", "sanity")  # columns evaluated once per model, not per evaluation ε


def _num(value):
    """2.0 → 2 (a name and a hash see one number); other floats unchanged."""
    value = float(value)
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class GridSpec:
    """The grid. Budgets: ``pgd_steps`` (PGD, transfer), ``cw_steps`` (CW-margin PGD),
    ``aa_steps``/``aa_square`` (the reduced AutoAttack ``aa_lite``), ``square_queries``,
    ``simba_steps``; ``sanity_steps`` × ``sanity_restarts``: the stronger PGD of the convergence
    check. Test images: ``eval_subset`` for fast columns, ``slow_subset`` for AutoAttack,
    Square and SimBA, ``sanity_subset`` for the per-model sanity checks; every subset is
    class-stratified and seeded. ``surrogate_seed``: the seed of the NAT surrogate of the transfer
    attack (never a grid seed). ``extra``: per-dataset overrides of ``defenses``, ``train_eps``,
    ``eval_eps``, ``seeds`` and ``attacks``. ``external``: models of your own evaluated beside
    ours (:mod:`survey_lib.external`), each on its ``datasets``, with the first seed only."""

    datasets: tuple[str, ...]
    defenses: tuple[str, ...] = DEFENSES
    train_eps: float = 8
    eval_eps: tuple[float, ...] = (1, 2, 4, 8)
    seeds: tuple[int, ...] = (0,)
    attacks: tuple[str, ...] = ("clean", "fgsm", "pgd", "cw", "autoattack", "square", "simba",
                                "transfer", "sanity")
    pgd_steps: int = 20
    cw_steps: int = 30
    aa_steps: int = 20
    aa_square: int = 300
    square_queries: int = 5000
    simba_steps: int = 5000
    eval_subset: int | None = None
    slow_subset: int | None = None
    sanity_subset: int | None = 200
    sanity_steps: int = 100
    sanity_restarts: int = 5
    surrogate_seed: int = 1000
    size: int = 28
    extra: dict = field(default_factory=dict)
    external: dict = field(default_factory=dict)  # {"ext_<name>": {"source": ..., "datasets": [...]}}

    def __post_init__(self):
        lower = lambda names: tuple(str(n).lower() for n in names)  # noqa: E731
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("datasets", lower(self.datasets))
        set_("defenses", lower(self.defenses))
        set_("attacks", lower(self.attacks))
        set_("train_eps", _num(self.train_eps))
        set_("eval_eps", tuple(_num(e) for e in self.eval_eps))
        set_("seeds", tuple(int(s) for s in self.seeds))
        extra = {}
        for name, over in self.extra.items():
            over = dict(over)
            for key in ("defenses", "attacks"):
                if key in over:
                    over[key] = lower(over[key])
            if "eval_eps" in over:
                over["eval_eps"] = tuple(_num(e) for e in over["eval_eps"])
            if "train_eps" in over:
                over["train_eps"] = _num(over["train_eps"])
            extra[str(name).lower()] = over
        set_("extra", extra)

    def replace(self, **changes) -> GridSpec:
        return dataclasses.replace(self, **changes)

    def _get(self, dataset: str, key: str):
        return self.extra.get(dataset, {}).get(key, getattr(self, key))

    def defenses_for(self, dataset: str) -> tuple[str, ...]:
        ours = tuple(self._get(dataset, "defenses"))
        return ours + tuple(d for d, e in self.external.items() if dataset in e["datasets"]
                            and d not in ours)

    def train_eps_for(self, dataset: str):
        return self._get(dataset, "train_eps")

    def eval_eps_for(self, dataset: str) -> tuple:
        return tuple(self._get(dataset, "eval_eps"))

    def seeds_for(self, dataset: str) -> tuple[int, ...]:
        return tuple(self._get(dataset, "seeds"))

    def attacks_for(self, dataset: str) -> tuple[str, ...]:
        """The columns of a dataset: the spec's for 2D classification; PGD on CE and Dice for
        segmentation (PH2); clean, FGSM and PGD for volumes (3D), unless ``extra`` says otherwise."""
        if "attacks" in self.extra.get(dataset, {}):
            return tuple(self.extra[dataset]["attacks"])
        if dataset == "ph2":
            return SEGMENTATION_ATTACKS
        if dataset.endswith("3d"):
            return tuple(a for a in self.attacks if a in VOLUME_ATTACKS)
        return self.attacks

    def validate(self) -> None:
        from ..data import task_info

        if not self.datasets:
            raise ConfigError("The grid names no dataset; pass at least one (e.g. breastmnist).")
        for name in self.datasets:
            if name != "ph2":
                task_info(name, self.size)  # raises a ConfigError naming the valid datasets
        for kind, valid in (("defense", DEFENSES), ("attack", ATTACKS + SEGMENTATION_ATTACKS
                                                                + ("sanity",))):
            names = [n for d in self.datasets for n in (self.defenses_for(d) if kind == "defense"
                                                         else self.attacks_for(d))
                     if n not in self.external]
            bad = [n for n in names if n not in valid]
            if bad:
                raise ConfigError(f"Unknown {kind} {bad[0]!r} in the grid spec. Valid {kind}s: "
                                  f"{', '.join(dict.fromkeys(valid))}.")
        for d in self.datasets:
            for e in self.eval_eps_for(d):
                validation.linf_eps(e, "benchmark grid", param="eval_eps", pixel_option=None)
            validation.linf_eps(self.train_eps_for(d), "benchmark grid", param="train_eps",
                                pixel_option=None)
            if not self.seeds_for(d):
                raise ConfigError(f"The grid has no seed for {d}; pass e.g. --seeds 0 1 2.")
        if self.surrogate_seed in {s for d in self.datasets for s in self.seeds_for(d)}:
            raise ConfigError(f"surrogate_seed {self.surrogate_seed} is also a grid seed: the "
                              "transfer surrogate must be a model the grid never attacks.")


@dataclass(frozen=True, order=True)
class Cell:
    """One result row: a model (dataset, defense, training ε, seed) under one attack at one
    evaluation ε (``None`` for the per-model columns ``clean`` and ``sanity``)."""

    dataset: str
    defense: str
    train_eps: float | None
    seed: int
    attack: str
    eval_eps: float | None

    @property
    def model(self) -> tuple:
        return (self.dataset, self.defense, self.train_eps, self.seed)

    def model_dir(self) -> str:
        eps = "" if self.train_eps is None else f"_t{self.train_eps:g}"
        return f"{self.defense}{eps}_s{self.seed}"

    def path(self, root: Path) -> Path:
        name = self.attack if self.eval_eps is None else f"{self.attack}_e{self.eval_eps:g}"
        return Path(root) / self.dataset / self.model_dir() / f"{name}.json"


def plan(spec: GridSpec) -> list[Cell]:
    """Every cell of the grid, grouped by model so each is trained (or loaded) once."""
    spec.validate()
    cells = []
    for d in spec.datasets:
        for seed in spec.seeds_for(d):
            for defense in spec.defenses_for(d):
                if defense in spec.external and seed != spec.seeds_for(d)[0]:
                    continue  # an external model is one model: evaluated once
                train_eps = None if defense == "nat" or defense in spec.external \
                    else spec.train_eps_for(d)
                for attack in spec.attacks_for(d):
                    evals = (None,) if attack in MODEL_CELLS else spec.eval_eps_for(d)
                    cells += [Cell(d, defense, train_eps, seed, attack, e) for e in evals]
    return cells


GRIDS = {
    "smoke": GridSpec(datasets=("breastmnist",), defenses=("nat", "pgd_at"), eval_eps=(2, 8),
                      attacks=("clean", "fgsm", "pgd", "cw", "aa_lite", "square", "simba",
                               "transfer", "sanity"),
                      pgd_steps=3, cw_steps=3, aa_steps=3, aa_square=10, square_queries=20,
                      simba_steps=20, eval_subset=64, slow_subset=32, sanity_subset=32,
                      sanity_steps=5, sanity_restarts=2),
    # cpu: the survey's protocol on the 2-core CPU, one seed by default (make main); the slow
    # attacks reduced and on a class-stratified subset, named as such in every row and table
    "cpu": GridSpec(datasets=("pneumoniamnist", "breastmnist", "retinamnist"),
                    attacks=("clean", "fgsm", "pgd", "cw", "aa_lite", "square", "simba", "transfer",
                             "sanity"),
                    aa_steps=20, aa_square=300, square_queries=300, simba_steps=300,
                    slow_subset=200, sanity_subset=200,
                    extra={"retinamnist": {"defenses": ("nat", "pgd_at")}}),
    # paper: the survey's protocol at full strength (standard AutoAttack, Square 5000, SimBA 5000)
    "paper": GridSpec(datasets=("pneumoniamnist", "breastmnist", "retinamnist", "dermamnist")),
    # segmentation (PH2 U-Net: PGD on per-pixel CE and on Dice) and volumes (AdrenalMNIST3D: FGSM,
    # PGD), NAT and PGD-AT, run by `make seg3d` (their own target: hours on the 2-core CPU)
    "smoke-seg3d": GridSpec(datasets=("ph2", "adrenalmnist3d"), defenses=("nat", "pgd_at"),
                            eval_eps=(2, 8), pgd_steps=3, eval_subset=8),
    "cpu-seg3d": GridSpec(datasets=("ph2", "adrenalmnist3d"), defenses=("nat", "pgd_at"),
                          seeds=(0, 1, 2)),
    "paper-seg3d": GridSpec(datasets=("ph2", "adrenalmnist3d"), defenses=("nat", "pgd_at")),
}


def grid_profile(name: str) -> str:
    """The profile a grid belongs to (``cpu-seg3d`` → ``cpu``)."""
    return name.split("-")[0]


def configure(spec: GridSpec, datasets=None, defenses=None, attacks=None, eval_eps=None,
              train_eps=None, seeds=None) -> GridSpec:
    """``spec`` with the given settings; a setting given here wins over per-dataset ones."""
    overrides = {k: v for k, v in (("datasets", datasets), ("defenses", defenses),
                                   ("attacks", attacks), ("eval_eps", eval_eps),
                                   ("train_eps", train_eps), ("seeds", seeds)) if v is not None}
    overrides = {k: (v if k == "train_eps" else tuple(v)) for k, v in overrides.items()}
    extra = {d: {k: v for k, v in o.items() if k not in overrides} for d, o in spec.extra.items()}
    return dataclasses.replace(spec, **overrides, extra=extra)


def available(spec: GridSpec, root=None) -> tuple[GridSpec, dict[str, str]]:
    """The grid restricted to the datasets that can be read here (present under the data root, or
    downloadable), and ``{skipped dataset: why}``."""
    from ..data import dataset_available

    skipped = {}
    for d in spec.datasets:
        ok, why = dataset_available(d, spec.size, root)
        if not ok:
            skipped[d] = why
    kept = tuple(d for d in spec.datasets if d not in skipped)
    return dataclasses.replace(spec, datasets=kept), skipped


def describe(spec: GridSpec) -> str:
    """One paragraph: what the grid runs (columns, budgets, subsets, seeds), for its tables."""
    subset = lambda n: "all test images" if n is None else f"a class-stratified subset of {n}"  # noqa: E731
    columns = {a for d in spec.datasets for a in spec.attacks_for(d)}
    parts = {
        "fgsm": "FGSM",
        "pgd": f"PGD-{spec.pgd_steps} with the survey's steps (0.5, 0.5, 1, 2 /255 at ε = 1, 2, 4, "
               "8), run to the end (its AUC is reported)",
        "cw": f"CW-margin PGD with {spec.cw_steps} steps (stops on fooled images: no AUC)",
        "autoattack": f"the standard AutoAttack on {subset(spec.slow_subset)}",
        "aa_lite": f"AA-lite (APGD-CE-{spec.aa_steps}, APGD-T-9×{spec.aa_steps} where a dataset has "
                   f"≥ 3 classes, then Square-{spec.aa_square}: a reduced cascade, not the standard "
                   f"AutoAttack) on {subset(spec.slow_subset)}",
        "square": f"Square ({spec.square_queries} queries) on {subset(spec.slow_subset)}",
        "simba": f"SimBA ({spec.simba_steps} pixels) on {subset(spec.slow_subset)}",
        "transfer": f"transfer: PGD-{spec.pgd_steps} examples crafted on a NAT surrogate of seed "
                    f"{spec.surrogate_seed}",
        "pgd_ce": f"PGD-{spec.pgd_steps} on the per-pixel cross-entropy",
        "pgd_dice": f"PGD-{spec.pgd_steps} on the soft Dice loss",
        "sanity": f"the sanity checks (PGD-{spec.sanity_steps} × {spec.sanity_restarts} restarts, "
                  f"ε = 64/255) on {subset(spec.sanity_subset)}",
    }
    used = "; ".join(text for key, text in parts.items() if key in columns)
    return (f"Each model is trained once per seed ({', '.join(map(str, spec.seeds))}) and attacked "
            f"at every evaluation ε ({', '.join(f'{e:g}' for e in spec.eval_eps)} /255) with: "
            f"{used}. The other columns use {subset(spec.eval_subset)}."
            + (" On binary tasks CE and the CW margin have the same sign gradient, so the PGD and "
               "CW columns differ only by CW's early stop." if {"pgd", "cw"} <= columns else ""))
