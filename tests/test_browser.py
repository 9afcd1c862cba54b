"""Real-browser checks in headless Chromium (Debian's ``chromium`` package driven by Playwright;
never a downloaded browser): notebook 00 runs top to bottom through the JupyterLab UI without an
error; in notebook 01 (cpu profile, the shipped pretrained models) moving the explorer's ε slider
redraws the attacked image with that ε in its title; JupyterLab's file browser lists each notebook
once (the jupytext .py twin is hidden by the project's server setting); every link of the rendered
site resolves. Screenshots go to ``results/browser/``."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "results" / "browser"
NOTEBOOK = "00_data_and_baselines.ipynb"
EXPLORER_NOTEBOOK = "01_whitebox_attacks.ipynb"
TIMEOUT_S = 300  # generous: the 2-core CI machine may be shared
# JupyterLab user settings: start the notebook's kernel without asking, attach every cell to the
# page (so the screenshot shows them all), no news pop-up.
SETTINGS = {"notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"},
            "apputils-extension/notification": {"fetchNews": "false"}}


def _chromium() -> str:
    """The system Chromium; skipped when it or Playwright is absent, a failure in CI."""
    exe = shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        reason = "needs Debian's chromium (apt-get install chromium) and the playwright package"
        if os.environ.get("CI"):
            pytest.fail("CI " + reason + " (.ci/run installs them)")
        pytest.skip(reason)
    return exe


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(data_env, tmp_path):
    """``start(notebook, profile="smoke")``: a JupyterLab server on 127.0.0.1 (random free port,
    random token) serving a copy of the notebook and its jupytext .py twin (``../benchmarks``
    linked beside them, as in the repository), with widgets rendered (``$CI`` unset for it) and an
    empty runs cache (``tmp_path / "runs"``); returns ``(base URL, token, path of the copy)``.
    The server and its kernels are stopped at teardown, whatever the test's outcome."""
    servers = []

    def start(notebook: str, profile: str = "smoke"):
        root = tmp_path / "lab"
        (root / "notebooks").mkdir(parents=True)
        for twin in (notebook, notebook.replace(".ipynb", ".py")):
            shutil.copy(ROOT / "notebooks" / twin, root / "notebooks")
        (root / "benchmarks").symlink_to(ROOT / "benchmarks")
        for plugin, values in SETTINGS.items():
            path = tmp_path / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        port, token = _free_port(), secrets.token_hex(16)
        env = {**os.environ, "SURVEY_PROFILE": profile, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
               "SURVEY_RUNS_DIR": str(tmp_path / "runs")}
        for name in ("MPLBACKEND", "CI", "SURVEY_STATIC_WIDGETS"):  # live widgets, inline figures
            env.pop(name, None)
        log_path = tmp_path / "jupyterlab.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                 "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                 f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                 f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
                 f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        servers.append((server, log_path))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert server.poll() is None, "JupyterLab exited:\n" + log_path.read_text()
            assert time.monotonic() < deadline, "JupyterLab never answered:\n" + log_path.read_text()
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        return base, token, root / "notebooks" / notebook

    yield start
    for server, log_path in servers:
        server.terminate()  # the server shuts its kernels down
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the server's own process group: its kernels
            server.wait()
        print(f"JupyterLab log: {log_path}")


def _wait_for_idle_kernel(base: str, token: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as r:
            if any(s["kernel"]["execution_state"] == "idle" for s in json.load(r)):
                return
        time.sleep(0.5)
    pytest.fail(f"the notebook's kernel was not idle after {TIMEOUT_S} s")


ALL_RAN = """() => {
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map(p => p.textContent.trim());
  return status === 'idle' && prompts.some(p => /\\d/.test(p)) && !prompts.some(p => p.includes('*'));
}"""


def _saved_notebook(path: Path, before: float, timeout_s: float = 60) -> dict:
    """The notebook JupyterLab saved after ``before`` (an mtime), read once the write is complete:
    a read between the server's truncation and its write finds an empty file."""
    deadline = time.monotonic() + timeout_s
    while True:
        if path.stat().st_mtime != before:
            try:
                return json.loads(path.read_text())
            except ValueError:
                if time.monotonic() > deadline:
                    raise
        elif time.monotonic() > deadline:
            raise AssertionError(f"{path.name} was not saved within {timeout_s:.0f} s")
        time.sleep(0.5)


def test_notebook_00_runs_in_jupyterlab(browser, jupyterlab):  # no server without a browser
    base, token, saved = jupyterlab(NOTEBOOK)
    n_code = sum(c["cell_type"] == "code" for c in json.loads(saved.read_text())["cells"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.goto(f"{base}/lab/tree/notebooks/{NOTEBOOK}?token={token}")
    _wait_for_idle_kernel(base, token)  # JupyterLab starts it shortly after the page loads
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    shot = SHOTS / "notebook00.png"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.wait_for_function(ALL_RAN, polling=500)
    finally:  # the screenshot shows the whole notebook, also when the test fails
        height = page.evaluate("document.querySelector('.jp-WindowedPanel-outer').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": min(height + 150, 16000)})
        page.evaluate("document.querySelector('.jp-WindowedPanel-outer').scrollTop = 0")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # JupyterLab renders an error output as stderr text holding the traceback
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    errors = [t for t in stderr.all_inner_texts() if "Traceback" in t or re.search(r"^\w*Error\b", t, re.M)]
    assert not errors, errors[0]
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    assert len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), prompts
    assert page.locator(".jp-OutputArea-output img").count() >= 1, "no figure was drawn"

    # Save through the UI, then read what the kernel produced from the file itself.
    before = saved.stat().st_mtime
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-item[data-command='docmanager:save']").click()
    cells = [c for c in _saved_notebook(saved, before)["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in cells)
    assert not [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]


def _run_menu(page, command: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


def _eps_in_title(text: str) -> float:
    return float(re.search(r"ε = ([\d.]+)/255", text).group(1))


def test_explorer_slider_in_notebook_01(browser, jupyterlab, tmp_path):
    """cpu profile, as in class: the setup cell loads the shipped models (no training: the runs
    cache stays empty), the explorer cell draws; dragging the ε slider redraws the view for the
    slider's ε."""
    base, token, saved = jupyterlab(EXPLORER_NOTEBOOK, profile="cpu")
    listing = json.load(urllib.request.urlopen(f"{base}/api/contents/notebooks?token={token}"))
    names = sorted(f["name"] for f in listing["content"])
    assert names == [EXPLORER_NOTEBOOK], f"the file browser lists {names}: the .py twin is not hidden"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.goto(f"{base}/lab/tree/notebooks/{EXPLORER_NOTEBOOK}?token={token}")
    _wait_for_idle_kernel(base, token)
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor",
                                                        has_text="Explorer(DATASETS"))
    cell.locator(".jp-InputArea-prompt").click()  # select the explorer cell
    _run_menu(page, "notebook:run-all-above")
    _run_menu(page, "notebook:run-cell")
    slider = cell.locator(".widget-slider", has=page.locator(".widget-label", has_text="ε"))
    caption, image = cell.locator(".widget-html-content"), cell.locator(".widget-output img")
    try:
        image.wait_for()
        before = {"src": image.get_attribute("src"), "title": caption.inner_text()}
        assert "model: nat (pretrained)" in before["title"], before["title"]  # the shipped model
        assert _eps_in_title(before["title"]) == float(slider.locator(".widget-readout").inner_text())
        handle = slider.locator(".noUi-handle").bounding_box()
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        page.mouse.down()
        page.mouse.move(handle["x"] + 60, handle["y"] + handle["height"] / 2, steps=5)
        page.mouse.up()
        # the view drawn for the released slider: its title's ε is the slider's, its image is new
        page.wait_for_function(
            """([caption, readout, old]) => {
                 const m = caption.innerText.match(/ε = ([\\d.]+)\\/255/);
                 return caption.innerText !== old && m && parseFloat(m[1]) === parseFloat(readout.innerText);
               }""", arg=[caption.element_handle(), slider.locator(".widget-readout").element_handle(),
                          before["title"]], polling=200, timeout=120_000)
        page.wait_for_function("([img, old]) => img.src !== old",
                               arg=[image.element_handle(), before["src"]], polling=200,
                               timeout=120_000)
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(SHOTS / "notebook01_explorer.png"))
    eps = float(slider.locator(".widget-readout").inner_text())
    title = caption.inner_text()
    assert eps > _eps_in_title(before["title"])  # dragged to the right
    assert _eps_in_title(title) == eps, (title, eps)
    assert image.get_attribute("src") != before["src"]
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [t for t in errors.all_inner_texts() if "Traceback" in t]
    assert not list((tmp_path / "runs").glob("*/*")), "notebook 01 trained a model in the cpu profile"


def test_site_links_resolve(browser, data_env, tmp_path):
    from survey_lib.site import build_site

    build_site("smoke", tmp_path / "site", ["00"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto((tmp_path / "site" / "index.html").as_uri())
    assert "00 · Data and undefended baselines" in page.inner_text("body")
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert any(h.endswith("notebooks/00_data_and_baselines.html") for h in hrefs), hrefs
    assert any("/benchmarks/" in h and h.endswith(".png") for h in hrefs), hrefs
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "site_index.png"), full_page=True)
    for href in hrefs:
        url = urlparse(href)
        assert url.scheme == "file", f"link leaves the site: {href}"
        assert Path(unquote(url.path)).is_file(), f"broken link: {href}"
        page.goto(href, wait_until="commit")  # raises on net::ERR_FILE_NOT_FOUND
    page.goto((tmp_path / "site" / "index.html").as_uri(), wait_until="load")
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths), widths
