"""The browsable site: notebooks executed in the smoke profile and rendered to HTML, an index in the
survey's taxonomy order with pages linked to it and to each other, the API reference, fresh exercise
copies, benchmark tables and figures copied in; a failing notebook is reported; the exercises'
solutions are not in the output unless asked for."""

import ast
import html
import json
import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from survey_lib import site as site_module
from survey_lib.__main__ import main
from survey_lib.errors import SurveyError
from survey_lib.exercises import TASKS
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
        ["exercises/README.html"] + [f"exercises/{name}" for name in exercises]
    assert "api/survey_lib.html" in links
    assert all((out / link).is_file() for link in links), links
    page = (out / "notebooks" / "00_data_and_baselines.html").read_text()
    assert "00 · Data and undefended baselines" in page and "data:image/png" in page  # figures
    assert "href='../index.html'" in page
    executed = json.loads((out / "notebooks" / "00_data_and_baselines.ipynb").read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code)
    assert "profile: smoke" in json.dumps(executed)
    assert "<table>" in (out / "benchmarks" / "baselines_cpu" / "baselines_cpu.html").read_text()
    assert (out / "benchmarks" / "baselines_cpu" / "baselines_cpu.png").read_bytes() == \
        (ROOT / "benchmarks" / "baselines_cpu" / "baselines_cpu.png").read_bytes()


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
    (src / "exercises").mkdir()  # a student's work where the exercises README says to save it
    _notebook(src / "exercises" / "my_01.ipynb", "my answers", "print('mine')")
    (results / "tables").mkdir(parents=True)
    (results / "tables" / "grid.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (results / "figures").mkdir()
    shutil.copy(ROOT / "benchmarks" / "baselines_cpu" / "baselines_cpu.png",
                results / "figures" / "curve.png")

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
    assert "my_01" not in index and not list(site.rglob("my_01*"))  # students' files stay private
    # every page links back to the index, the notebooks to their neighbours in taxonomy order
    nav = {p: _hrefs(site / "notebooks" / f"{p}.html") for p in ("00_data", "05_at", "09_bench")}
    assert nav["00_data"][:2] == ["../index.html", "05_at.html"]
    assert nav["05_at"][:3] == ["../index.html", "00_data.html", "09_bench.html"]
    assert nav["09_bench"][:2] == ["../index.html", "05_at.html"] and "next:" not in \
        (site / "notebooks" / "09_bench.html").read_text()
    assert "../../index.html" in _hrefs(site / "benchmarks" / "tables" / "grid.html")
    api = site / "api" / "survey_lib" / "attacks.html"
    assert "../../index.html" in _hrefs(api) and "make_attack" in api.read_text()


def test_cli_rejects_unknown_notebook_and_results(tmp_path, capsys):
    assert main(["site", "--notebooks", "77", "--out", str(tmp_path)]) == 2
    assert "no notebook matches 77" in capsys.readouterr().err
    assert main(["site", "--results", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()


def _text(path: Path) -> str:
    """What a reader sees: an HTML page without its tags, or a notebook's sources and outputs."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        parts = []
        for cell in nbformat.reads(raw, as_version=4).cells:
            parts.append(cell.source)
            for o in cell.get("outputs", []):
                parts += [o.get("text", ""), *o.get("traceback", []), *map(str, o.get("data", {}).values())]
        return "\n".join(parts)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def _solution_bodies() -> dict[str, list[str]]:
    """{task: the lines of its reference solution's body} from the notebooks' sources, but for
    short lines and lines that other cells of the notebooks also hold (e.g. a loop header)."""
    cells = [c for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")) for c in jupytext.read(p).cells]
    public = {line.strip() for c in cells if "solution" not in c.metadata.get("tags", [])
              for line in c.source.splitlines()}
    bodies = {}
    for task in TASKS.values():
        for cell in (c for c in cells if "solution" in c.metadata.get("tags", [])):
            for fn in ast.parse(cell.source).body:
                if isinstance(fn, ast.FunctionDef) and fn.name == task.function:
                    lines = cell.source.splitlines()[fn.body[1].lineno - 1:fn.end_lineno]
                    bodies[task.id] = [line.strip() for line in lines
                                       if len(line.strip()) >= 16 and line.strip() not in public]
    assert set(bodies) == set(TASKS) and all(bodies.values())
    return bodies


def _answers_notebook(path: Path) -> None:
    """A notebook of every solution cell of the five exercise notebooks, each with its check cell."""
    cells = [nbformat.v4.new_markdown_cell("# 01 · Answers"),
             nbformat.v4.new_code_cell("PROFILE = None", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("import torch\nimport torch.nn.functional as F\n"
                                       "from survey_lib import exercises")]
    for notebook in dict.fromkeys(t.notebook for t in TASKS.values()):
        ref = jupytext.read(ROOT / "notebooks" / f"{notebook}.py").cells
        for i, cell in enumerate(ref):
            if "solution" in cell.metadata.get("tags", []):
                cells += [nbformat.v4.new_code_cell(cell.source, metadata={"tags": ["solution"]}),
                          nbformat.v4.new_code_cell(ref[i + 1].source)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_site_shows_no_solution_unless_asked(tmp_path, monkeypatch, capsys):
    """Acceptance: the text of every rendered page and notebook of `python -m survey_lib site` holds
    no line of any reference solution's body; with --with-solutions all of them are there."""
    src = tmp_path / "nb"
    src.mkdir()
    _answers_notebook(src / "01_answers.ipynb")
    real = site_module.build_site
    monkeypatch.setattr(site_module, "build_site", lambda *a, **kw: real(*a, source=src, **kw))
    bodies = _solution_bodies()
    for flag, shown in (([], False), (["--with-solutions"], True)):
        out = tmp_path / f"site{len(flag)}"
        assert main(["site", "--out", str(out), *flag]) == 0
        assert "1 notebook(s) rendered" in capsys.readouterr().out
        executed = (out / "notebooks" / "01_answers.ipynb").read_text()
        assert executed.count("✓ ") == len(TASKS)  # the solutions ran: every check passed
        text = "\n".join(_text(p) for p in sorted(out.rglob("*")) if p.suffix in (".html", ".ipynb"))
        found = {task: [line for line in lines if line in text] for task, lines in bodies.items()}
        if shown:
            assert all(found[task] == lines for task, lines in bodies.items()), found
        else:
            assert not any(found.values()), found
            assert text.count("reference solution not shown") >= len(TASKS)
