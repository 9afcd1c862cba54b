"""Tables and figures of trained baselines (this module never trains): our test metrics beside the
MedMNIST v2 paper's (Yang et al., Scientific Data 2023, Table 3: ResNet-18 (28) for 2D, ResNet-18 +
3D for 3D) and the validation curves.
"""

from __future__ import annotations

import pandas as pd

# MedMNIST v2, Table 3: test AUC / ACC (ResNet-18 (28) for 2D, ResNet-18 + 3D (28) for 3D).
MEDMNIST_V2_REFERENCE = {
    "pneumoniamnist": (0.944, 0.854),
    "breastmnist": (0.901, 0.863),
    "retinamnist": (0.717, 0.524),
    "adrenalmnist3d": (0.827, 0.721),
    "vesselmnist3d": (0.874, 0.877),
}


def baseline_table(records: list[dict]) -> pd.DataFrame:
    """One row per trained baseline: our test metrics, the paper's, the cost and the command."""
    rows = []
    for r in records:
        c, t = r["config"], r["test"]
        ref_auc, ref_acc = MEDMNIST_V2_REFERENCE.get(c["dataset"], (None, None))
        row = {"dataset": c["dataset"], "size": c["size"], "model": c["model"],
               "profile": c["profile"], "epochs": c["epochs"], "best_epoch": r["best_epoch"]}
        if "dice" in t:
            row.update(test_dice=t["dice"], test_iou=t["iou"])
        else:
            row.update(test_auc=t["auc"], test_acc=t["acc"], test_bacc=t["bacc"],
                       pred_shares=t["shares"], collapsed="yes" if t["collapsed"] else "no",
                       paper_auc=ref_auc, paper_acc=ref_acc)
        row.update(wall_seconds=r["wall_seconds"], device=r["device"],
                   command=(f"python -m survey_lib train --dataset {c['dataset']} "
                            f"--size {c['size']} --profile {c['profile']}"))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_baselines(records: list[dict]):
    """Left: our test AUC/ACC/bACC beside the paper's; right: validation score per epoch."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = baseline_table([r for r in records if "auc" in r["test"]])
    long = []
    for _, row in table.iterrows():
        for metric in ("auc", "acc", "bacc"):
            long.append({"dataset": row["dataset"], "metric": f"ours {metric.upper()}",
                         "value": row[f"test_{metric}"]})
        for metric in ("auc", "acc"):
            if pd.notna(row[f"paper_{metric}"]):
                long.append({"dataset": row["dataset"], "metric": f"paper {metric.upper()}",
                             "value": row[f"paper_{metric}"]})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    sns.barplot(pd.DataFrame(long), x="dataset", y="value", hue="metric", ax=axes[0])
    axes[0].set(title="Test metrics: ours vs MedMNIST v2 ResNet-18", ylabel="score", ylim=(0, 1))
    axes[0].legend(fontsize=7, ncol=2)
    curves = [{"dataset": r["config"]["dataset"], **h} for r in records for h in r["history"]]
    sns.lineplot(pd.DataFrame(curves), x="epoch", y="val_score", hue="dataset", marker="o", ax=axes[1])
    axes[1].set(title="Validation score per epoch (AUC; Dice for PH2)", ylabel="val score")
    fig.tight_layout()
    return fig
