"""The browsable site: notebooks executed in the smoke profile and rendered to HTML, an index in the
survey's taxonomy order, benchmark tables and figures copied in; a failing notebook is reported."""

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from survey_lib.__main__ import main
from survey_lib.errors import SurveyError
from survey_lib.site import build_site

ROOT = Path(__file__).resolve().parents[1]


def _hrefs(index: Path) -> list[str]:
    return re.findall(r"(?:href|src)='([^']+)'", index.read_text())


def test_cli_renders_notebook_00(data_env, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["site", "--notebooks", "00", "--out", str(out)]) == 0
    assert "1 notebook(s) rendered" in capsys.readouterr().out
    index = out / "index.html"
    links = _hrefs(index)
    assert "notebooks/00_data_and_baselines.html" in links
    exercises = sorted(p.name for p in (ROOT / "notebooks" / "exercises").glob("*.ipynb"))
    assert [link for link in links if link.startswith("exercises/")] == \
        [f"exercises/{name}" for name in exercises]
    assert all((out / link).is_file() for link in links), links
    page = (out / "notebooks" / "00_data_and_baselines.html").read_text()
    assert "00 · Data and undefended baselines" in page and "data:image/png" in page  # figures
    executed = json.loads((out / "notebooks" / "00_data_and_baselines.ipynb").read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code)
    assert "profile: smoke" in json.dumps(executed)
    assert "<table>" in (out / "benchmarks" / "baselines_cpu.html").read_text()
    assert (out / "benchmarks" / "baselines_cpu.png").read_bytes() == \
        (ROOT / "benchmarks" / "baselines_cpu.png").read_bytes()


def _notebook(path: Path, title: str, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nText."),
                nbformat.v4.new_code_cell("PROFILE = None", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_failed_notebook_is_reported_in_taxonomy_order(tmp_path):
    src, results = tmp_path / "nb", tmp_path / "results"
    src.mkdir()
    _notebook(src / "09_bench.ipynb", "09 · Bench", "print(PROFILE)")
    _notebook(src / "05_at.ipynb", "05 · AT", "raise ValueError('boom')")
    _notebook(src / "00_data.ipynb", "00 · Data", "print(PROFILE)")
    (results / "tables").mkdir(parents=True)
    (results / "tables" / "grid.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (results / "figures").mkdir()
    shutil.copy(ROOT / "benchmarks" / "baselines_cpu.png", results / "figures" / "curve.png")

    with pytest.raises(SurveyError, match=r"1 of 3 notebook\(s\) failed \(05_at: ValueError: boom"):
        build_site("smoke", tmp_path / "site", source=src, results=results)
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    order = [index.index(s) for s in ("Data and baselines", "00 · Data", "Defenses", "05 · AT",
                                       "Benchmark", "09 · Bench", "Benchmark results")]
    assert order == sorted(order)
    assert "failed: ValueError: boom" in index and index.count("class='ok'") == 2
    assert "ValueError" in (site / "notebooks" / "05_at.html").read_text()  # rendered to the error
    assert "smoke" in (site / "notebooks" / "09_bench.html").read_text()  # the parameter arrived
    links = _hrefs(site / "index.html")
    assert "benchmarks/tables/grid.html" in links and "benchmarks/figures/curve.png" in links
    assert all((site / link).is_file() for link in links), links
    assert "<td>1</td>" in (site / "benchmarks" / "tables" / "grid.html").read_text()
    assert (site / "benchmarks" / "figures" / "curve.png").is_file()


def test_cli_rejects_unknown_notebook_and_results(tmp_path, capsys):
    assert main(["site", "--notebooks", "77", "--out", str(tmp_path)]) == 2
    assert "no notebook matches 77" in capsys.readouterr().err
    assert main(["site", "--results", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()
