"""Tables and figures from records and result rows; nothing here trains or attacks.

- :mod:`.baselines`: trained baselines beside the MedMNIST v2 paper's numbers;
- :mod:`.tables`: benchmark rows → mean ± std over seeds, 95% intervals, the survey's layout;
- :mod:`.findings`: sanity checks per model and the survey's findings, claimed only when
  intervals separate;
- :mod:`.figures`: robust accuracy vs ε, the trade-off, cost and the gallery;
- :mod:`.summary`: a run's results as text generated from its rows;
- :mod:`.files`: writing tables and figures with their provenance.
"""

from .baselines import MEDMNIST_V2_REFERENCE, baseline_table, plot_baselines
from .figures import plot_benchmark, plot_gallery
from .files import provenance, save_figures, save_table
from .findings import difference, explanation_findings, sanity_table, survey_findings
from .summary import results_markdown
from .tables import save_benchmark_tables, summarise, survey_table

__all__ = ["MEDMNIST_V2_REFERENCE", "baseline_table", "difference", "explanation_findings", "plot_baselines",
           "plot_benchmark", "plot_gallery", "provenance", "results_markdown", "sanity_table",
           "save_benchmark_tables",
           "save_figures", "save_table", "summarise", "survey_findings", "survey_table"]
