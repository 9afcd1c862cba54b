"""A browsable HTML rendering of the notebooks: ``python -m survey_lib site``.

:func:`build_site` executes each notebook with papermill in a chosen profile, converts it to HTML
with nbconvert (figures embedded) and writes ``index.html``: the notebooks in the order of the
survey's taxonomy (Dong et al., ACM CSUR 2024), each page linking back to the index and on to the
next notebook; the exercise copies (generated afresh, never read from ``notebooks/exercises/``,
where students save their work); an API reference generated from the docstrings (pdoc); then the
benchmark tables (Markdown → HTML) and figures (PNG) of a results folder, copied into the site so
every link is relative. The notebooks run in full, but the exercises' answer key stays private: the
``solution`` cells are rendered with their signatures and docstrings only, unless
``with_solutions``. A notebook that fails is rendered up to its error and marked *failed* in the
index; the build goes on.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from .errors import ConfigError, SurveyError
from .paths import BENCHMARKS, NOTEBOOKS, ROOT

# The survey's taxonomy: section → {notebook number: one-line description}.
TAXONOMY = (
    ("Data and baselines", {"00": "MedMNIST 2D/3D and PH2 data; undefended (NAT) models"}),
    ("Attacks", {"01": "white-box: FGSM, PGD, CW, DeepFool",
                 "02": "black-box: query-based (Square, SimBA) and transfer",
                 "03": "universal perturbations and adversarial patches",
                 "04": "segmentation (PH2 U-Net) and 3D volumes"}),
    ("Defenses", {"05": "adversarial training: PGD-AT, TRADES, MART, HAT, fast AT",
                  "06": "pre-processing: input purification",
                  "07": "adversarial example detection",
                  "08": "distillation, feature denoising and certified robustness"}),
    ("Benchmark", {"09": "the survey's benchmark grid: defenses × attacks × ε"}),
)

STYLE = """body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;
line-height:1.5}li{margin:.3em 0}.ok{color:#1a7f37}.failed{color:#cf222e;font-weight:bold}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px}
figure{display:inline-block;margin:.5em}img{max-width:32em;border:1px solid #ddd}
code{background:#f4f4f4}"""
NAV_STYLE = ("font-family:system-ui,sans-serif;padding:.5em 1em;background:#f6f8fa;"
             "border-bottom:1px solid #ddd")


def find_notebooks(source: Path = NOTEBOOKS, select=None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``source``; ``select`` keeps those whose name
    starts with one of the given prefixes (e.g. ``["00", "09"]``)."""
    found = sorted(Path(source).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ConfigError(f"no notebooks NN_*.ipynb in {source}: point --source at the "
                          "repository's notebooks/ folder.")
    if not select:
        return found
    unknown = [s for s in select if not any(p.name.startswith(s) for p in found)]
    if unknown:
        raise ConfigError(f"no notebook matches {', '.join(unknown)}; valid: "
                          f"{', '.join(p.stem for p in found)}. Pass numbers such as 00 09.")
    return [p for p in found if any(p.name.startswith(s) for s in select)]


def _title(nb, default: str) -> str:
    return next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                 for line in c.source.splitlines() if line.startswith("# ")), default)


def with_nav(page: str, links: list[tuple[str, str]]) -> str:
    """``page`` with a bar of ``(href, label)`` links at the top and the bottom of its body."""
    bar = (f"<nav class='site-nav' style='{NAV_STYLE}'>"
           + " · ".join(f"<a href='{href}'>{html.escape(label)}</a>" for href, label in links) + "</nav>")
    page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, page, count=1)
    return page.replace("</body>", bar + "</body>", 1)


def render_notebook(path: Path, out_dir: Path, profile: str, with_solutions: bool = False,
                    nav: list[tuple[str, str]] = ()) -> dict:
    """Execute ``path`` (cwd: its folder, ``PROFILE = profile``), write the executed ``.ipynb`` and
    its ``.html`` (with the ``nav`` links) into ``out_dir``, the exercises' solution bodies removed
    unless ``with_solutions``; return name, title, seconds and error (``None`` if it ran)."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    from .exercises import hide_solutions

    out_dir.mkdir(parents=True, exist_ok=True)
    error, start = None, time.perf_counter()
    # figures inline; explorers (survey_lib.widgets) drawn as static figures: a page has no widgets
    settings = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "SURVEY_STATIC_WIDGETS": "1"}
    old = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    with tempfile.TemporaryDirectory() as tmp:  # the executed notebook still holds the solutions
        executed = Path(tmp) / path.name
        try:
            papermill.execute_notebook(str(path), str(executed), parameters={"PROFILE": profile},
                                       cwd=str(path.parent), kernel_name="python3",
                                       progress_bar=False)
        except Exception as exc:  # papermill's execution error, or a kernel that died
            error = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        nb = nbformat.read(executed if executed.exists() else path, as_version=4)
    seconds = time.perf_counter() - start
    if not with_solutions:
        hide_solutions(nb)
    nbformat.write(nb, out_dir / path.name)
    title = _title(nb, path.stem)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nb, resources={
        "metadata": {"name": title}})
    (out_dir / f"{path.stem}.html").write_text(with_nav(body, list(nav)), encoding="utf-8")
    return {"name": path.stem, "title": title, "seconds": seconds, "error": error}


def benchmark_results(folder: Path = BENCHMARKS) -> tuple[list[Path], list[Path]]:
    """(Markdown tables, PNG figures) of a results folder, at any depth; the one place that reads
    the committed benchmark results (READMEs describe a study and are not tables)."""
    folder = Path(folder)
    tables = [md for md in sorted(folder.rglob("*.md")) if md.name.lower() != "readme.md"]
    return tables, sorted(folder.rglob("*.png"))


def copy_results(folder: Path, out_dir: Path) -> tuple[list[Path], list[Path]]:
    """Render every Markdown table under ``folder`` to HTML and copy every PNG figure, keeping
    their relative layout under ``out_dir``; return (tables, figures) as paths in ``out_dir``."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    tables, figures = [], []
    found_tables, found_figures = benchmark_results(folder)
    for md in found_tables:
        target = (out_dir / md.relative_to(folder)).with_suffix(".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        back = os.path.relpath(out_dir.parent / "index.html", target.parent)
        target.write_text(_page(md.stem, markdown2html_mistune(md.read_text(encoding="utf-8")),
                                [(back, "↑ index")]), encoding="utf-8")
        tables.append(target)
    for png in found_figures:
        target = out_dir / png.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, target)
        figures.append(target)
    return tables, figures


def build_api(out_dir: Path) -> Path:
    """The API reference generated from the package's docstrings (pdoc: signatures and docstrings,
    no source) under ``out_dir``, each page linking back to the site's index; returns the
    package's page."""
    try:
        import pdoc
        import pdoc.render
    except ImportError:
        raise ConfigError("The site's API reference needs pdoc, part of the dev extra: pip install "
                          "-e '.[dev]' (or pip install pdoc).") from None
    shutil.rmtree(out_dir, ignore_errors=True)
    pdoc.render.configure(docformat="restructuredtext", show_source=False,
                          footer_text="survey_lib API reference")
    pdoc.pdoc("survey_lib", output_directory=out_dir)
    for page in out_dir.rglob("*.html"):
        back = os.path.relpath(out_dir.parent / "index.html", page.parent)
        page.write_text(with_nav(page.read_text(encoding="utf-8"), [(back, "↑ survey_lib site")]),
                        encoding="utf-8")
    return out_dir / "survey_lib.html"


def _page(title: str, body: str, nav: list[tuple[str, str]] = ()) -> str:
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>\n")
    return with_nav(page, list(nav)) if nav else page


def _label(path: Path, site: Path) -> str:
    """``benchmarks/x/tables/y.html`` → ``x/tables/y``."""
    return path.relative_to(site / "benchmarks").with_suffix("").as_posix()


def _index(records: list[dict], exercises, api: Path, tables, figures, site: Path, profile: str,
           results: Path, with_solutions: bool) -> str:
    by_number = {r["name"][:2]: r for r in records}
    known = {n for _, entries in TAXONOMY for n in entries}
    sections = [(name, [(n, d) for n, d in entries.items() if n in by_number])
                for name, entries in TAXONOMY]
    sections.append(("Other notebooks", [(n, "") for n in by_number if n not in known]))
    parts = ["<h1>survey_lib: notebooks and benchmark</h1>",
             "<p>Companion to <em>Adversarial Attack and Defense for Medical Image Analysis</em> "
             "(Dong et al., ACM Computing Surveys 2024). Each notebook below was executed in the "
             f"<code>{html.escape(profile)}</code> profile; the notebooks follow the survey's "
             "taxonomy. " + ("The exercises' reference solutions are shown." if with_solutions else
                             "The exercises' reference solutions are not shown (signatures and "
                             "docstrings only).") + f" <a href='{api.relative_to(site).as_posix()}'>"
             "API reference</a> (from the docstrings).</p>"]
    for name, entries in sections:
        if not entries:
            continue
        parts.append(f"<h2>{html.escape(name)}</h2><ul>")
        for number, description in entries:
            r = by_number[number]
            status = (f"<span class='failed'>failed: {html.escape(r['error'])}</span>"
                      if r["error"] else f"<span class='ok'>ran in {r['seconds']:.0f} s</span>")
            parts.append(f"<li><a href='notebooks/{r['name']}.html'>{html.escape(r['title'])}</a>"
                         f"{' — ' + html.escape(description) if description else ''} · {status} · "
                         f"<a href='notebooks/{r['name']}.ipynb'>executed .ipynb</a></li>")
        parts.append("</ul>")
    parts.append("<h2>Exercises</h2><p>Student copies with tasks to fill in: download, open in "
                 "Jupyter, grade with <code>python -m survey_lib exercises grade</code> "
                 "(<a href='exercises/README.html'>how grading works, solutions policy</a>).</p><ul>"
                 + "".join(f"<li><a href='exercises/{e.name}'>{html.escape(e.stem)}</a></li>"
                           for e in exercises) + "</ul>")
    shown = results.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    parts.append(f"<h2>Benchmark results</h2><p>Tables and figures from "
                 f"<code>{html.escape(str(shown))}</code>.</p>")
    if tables:
        parts.append("<ul>" + "".join(
            f"<li><a href='{t.relative_to(site).as_posix()}'>{html.escape(_label(t, site))}</a></li>"
            for t in tables) + "</ul>")
    parts += [f"<figure><a href='{f.relative_to(site).as_posix()}'><img src="
              f"'{f.relative_to(site).as_posix()}' alt='{html.escape(_label(f, site))}'></a>"
              f"<figcaption>{html.escape(_label(f, site))}</figcaption></figure>" for f in figures]
    if not tables and not figures:
        parts.append("<p>None found.</p>")
    return _page("survey_lib", "\n".join(parts))


def _exercises(out_dir: Path) -> list[Path]:
    """Fresh exercise copies from the notebooks' sources (never the files in notebooks/exercises/,
    where students save theirs) and their README as HTML."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from . import exercises

    shutil.rmtree(out_dir, ignore_errors=True)
    written = exercises.build(out_dir)
    readme = out_dir / "README.md"
    (out_dir / "README.html").write_text(_page("Exercises", markdown2html_mistune(
        readme.read_text(encoding="utf-8")), [("../index.html", "↑ index")]), encoding="utf-8")
    readme.unlink()
    return [p for p in written if p.suffix == ".ipynb"]


def build_site(profile: str = "smoke", out: str | Path = "site", notebooks=None,
               results: str | Path | None = None, source: str | Path = NOTEBOOKS,
               with_solutions: bool = False) -> list[dict]:
    """Execute the chosen notebooks (all by default) in ``profile`` and write the HTML site to
    ``out`` (``index.html``, ``notebooks/``, ``exercises/``, ``api/``, ``benchmarks/``) with the
    tables and figures of ``results`` (default: the committed ``benchmarks/``); the exercises'
    solutions are shown only ``with_solutions``. Returns one record per notebook. Raises
    :class:`SurveyError` after writing the site if any notebook failed."""
    import nbformat
    from tqdm.auto import tqdm

    from .config import get_profile

    profile = get_profile(profile).name
    results = Path(results) if results else BENCHMARKS
    if not results.is_dir():
        raise ConfigError(f"results folder {results} does not exist: pass --results with a folder "
                          "holding Markdown tables / PNG figures (e.g. results/benchmark_cpu).")
    paths = find_notebooks(Path(source), notebooks)
    titles = [_title(nbformat.read(p, as_version=4), p.stem) for p in paths]
    site = Path(out)
    site.mkdir(parents=True, exist_ok=True)
    records = []
    for k, path in enumerate(bar := tqdm(paths, desc="notebooks", unit="nb")):
        bar.set_postfix_str(path.stem)
        nav = [("../index.html", "↑ index")]
        nav += [(f"{paths[k - 1].stem}.html", f"← {titles[k - 1]}")] if k > 0 else []
        nav += [(f"{paths[k + 1].stem}.html", f"next: {titles[k + 1]} →")] if k + 1 < len(paths) else []
        records.append(render_notebook(path, site / "notebooks", profile, with_solutions, nav))
    shutil.rmtree(site / "benchmarks", ignore_errors=True)
    tables, figures = copy_results(results, site / "benchmarks")
    exercises, api = _exercises(site / "exercises"), build_api(site / "api")
    (site / "index.html").write_text(_index(records, exercises, api, tables, figures, site, profile,
                                            results, with_solutions), encoding="utf-8")
    failed = [r for r in records if r["error"]]
    if failed:
        raise SurveyError(f"{len(failed)} of {len(records)} notebook(s) failed ("
                          + "; ".join(f"{r['name']}: {r['error']}" for r in failed)
                          + f"); the site is written to {site}/index.html with the errors shown.")
    return records
