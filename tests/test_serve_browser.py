"""The playground in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, driven by the
`selenium` package) loads the page, steps through a sequence forward and back, draws the gradient plot (with
the loaded model's own curve), colours a text by a hidden unit and by a classifier's running opinion, toggles
the language, and checks the rendered numbers against the API's.
Screenshots of each view go to docs/figures/playground_*.png with RNNKIT_SAVE_SCREENSHOTS=1 (the README's
figures), else to the temporary folder, so that a test run leaves the work tree as it was.

Without Chromium, chromedriver or selenium the tests skip and say which is missing (the API tests in
test_serve_api.py always run).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from test_serve_api import TEXT, classifier_file, lm_file, poem_file  # noqa: F401 -- the model fixtures

SAVE = os.environ.get("RNNKIT_SAVE_SCREENSHOTS")
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures" if SAVE else Path(tempfile.gettempdir())
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None

MISSING = [what for what, ok in (("the chromium package", BROWSER), ("the chromium-driver package", DRIVER),
                                 ("the selenium Python package", webdriver)) if not ok]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"no headless browser: {', '.join(MISSING)} not installed (apt-get install "
    "chromium chromium-driver; pip install selenium)")


def num(v: float, precision: int = 4) -> str:
    """The page's (and rnnkit explain's) rounding: trailing zeros dropped, -0 -> 0."""
    s = f"{v:.{precision}f}"
    s = s.rstrip("0").rstrip(".") if "." in s else s
    return "0" if s in ("-0", "") else s


def vector(v, precision: int = 4) -> str:
    return "[" + ", ".join(num(e, precision) for e in v) + "]"


@pytest.fixture(scope="module")
def page(lm_file):  # noqa: F811
    from rnnkit.serve import make_server

    server = make_server(port=0, model=lm_file)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = Options()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--lang=en-US"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except WebDriverException as e:
        server.shutdown()
        pytest.skip(f"headless Chromium did not start: {e.msg}")
    base = f"http://127.0.0.1:{server.server_port}"
    driver.get(base + "/")
    driver.execute_script("localStorage.clear()")
    driver.get(base + "/")
    yield driver, base
    driver.quit()
    server.shutdown()
    server.server_close()


def api(base, path, body):
    request = urllib.request.Request(base + path, json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def wait(driver, css, timeout=20):
    return WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def click(driver, css):
    driver.find_element(By.CSS_SELECTOR, css).click()
    time.sleep(0.15)


def shot(driver, name):
    FIGURES.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(FIGURES / f"playground_{name}.png"))  # the temporary folder: overwritten


def test_steps_forward_then_back_through_the_tutorial(page):
    driver, base = page
    wait(driver, "#q-h .value")
    data = api(base, "/api/trace", {"cell": "rnn", "weights": "tutorial", "seed": 0, "loss": "last",
                                    "nonlinearity": "tanh"})
    h = [next(q["value"] for q in s["quantities"] if q["symbol"] == "h") for s in data["steps"]]
    assert "t = 1 of 3" in text(driver, "#phase")
    assert text(driver, "#q-h .value") == "= " + vector(h[0])
    assert text(driver, "#q-a .work").startswith("= [0.1*0.1 + 0.2*0.2")  # W_hh h_0 = 0 is left out
    click(driver, "#next")
    assert "t = 2 of 3" in text(driver, "#phase")
    assert text(driver, "#q-h .value") == "= " + vector(h[1])
    node = driver.find_elements(By.CSS_SELECTOR, "[data-node=h] text.v")
    assert [e.text for e in node] == [num(v) for v in h[1]]  # the diagram carries the same numbers
    shot(driver, "step")
    click(driver, "#next")
    click(driver, "#next")  # past the last step: the backward pass starts at t = T
    assert driver.find_element(By.ID, "phase").get_attribute("data-phase") == "backward"
    back = data["backward"]["steps"]
    assert text(driver, "[data-g=dL_dh] code") == vector(back[2]["dL_dh"])
    click(driver, "#next")
    assert text(driver, "[data-g=dL_dh] code") == vector(back[1]["dL_dh"])
    assert text(driver, "[data-g=from_future] code") == vector(back[1]["from_future"])
    shot(driver, "backward")
    click(driver, "#next")
    assert text(driver, "[data-g=dL_dh0] code") == vector(data["backward"]["dL_dh0"])
    click(driver, "#prev")
    assert text(driver, "[data-g=dL_dh] code") == vector(back[1]["dL_dh"])


def test_an_lstm_with_random_weights(page):
    driver, base = page
    driver.execute_script("""const f = document.getElementById('step-form');
        f.cell.value = 'lstm'; f.weights.value = 'random'; f.dispatchEvent(new Event('change'));
        f.hidden_size.value = 4; f.steps.value = 5; f.seed.value = 3; f.x.value = '';""")
    click(driver, "#run")
    wait(driver, "#q-c .value")
    data = api(base, "/api/trace", {"cell": "lstm", "weights": "random", "seed": 3, "input_size": 2,
                                    "hidden_size": 4, "output_size": 2, "steps": 5, "loss": "last"})
    first = {q["symbol"]: q["value"] for q in data["steps"][0]["quantities"]}
    assert "T = 5" in text(driver, ".sizes")
    for symbol in ("i", "f", "g", "o", "c", "h"):
        assert text(driver, f"#q-{symbol} .value") == "= " + vector(first[symbol]), symbol


def test_the_language_toggle_changes_words_not_numbers(page):
    driver, _ = page
    value = text(driver, "#q-h .value")
    click(driver, "#lang")
    assert text(driver, "[data-view=step]") == "逐步演算公式"
    assert text(driver, "#q-h .meaning") == "隐藏状态" and text(driver, "#q-f .meaning") == "遗忘门"
    assert text(driver, "#q-h .value") == value
    assert driver.execute_script("return document.documentElement.lang") == "zh-CN"
    shot(driver, "step_zh")
    click(driver, "#lang")
    assert text(driver, "[data-view=step]") == "Step through the equations"


def test_the_gradient_plot_follows_the_sliders(page):
    driver, base = page
    click(driver, "[data-view=gradients]")
    wait(driver, "#grad-svg polyline[data-kind=LSTM]")
    driver.execute_script("""const f = document.getElementById('grad-form');
        f.T.value = 30; f.dispatchEvent(new Event('input', {bubbles: true}));""")
    rnn = "#grad-svg polyline[data-kind=RNN]"
    WebDriverWait(driver, 20).until(  # one point per time step
        lambda d: len(d.find_element(By.CSS_SELECTOR, rnn).get_attribute("points").split()) == 30)
    svg = driver.find_element(By.ID, "grad-svg")
    ActionChains(driver).move_to_element_with_offset(svg, -svg.size["width"] // 2 + 70, 0).perform()  # t = 0
    time.sleep(0.3)
    assert text(driver, "#grad-readout").startswith("t = 0")
    norms = api(base, "/api/gradient-norms", {"T": 30, "H": 32, "forget_bias": 0, "weight_scale": 1})["norms"]
    shown = text(driver, "#grad-readout [data-kind=RNN]").split(": ")[1]
    assert float(shown) == pytest.approx(norms["RNN"][0] / norms["RNN"][-1], rel=1e-3)
    shot(driver, "gradients")


def test_the_trained_models_curve_beside_the_initialisation_curves(page):
    driver, base = page
    click(driver, "[data-view=gradients]")
    trained = "#grad-svg polyline[data-kind=trained]"
    wait(driver, trained)
    driver.execute_script("""const f = document.getElementById('grad-form');
        f.T.value = 40; f.dispatchEvent(new Event('input', {bubbles: true}));""")
    WebDriverWait(driver, 20).until(  # T - 1 points: from one step back
        lambda d: len(d.find_element(By.CSS_SELECTOR, trained).get_attribute("points").split()) == 39)
    assert "trained LSTM" in text(driver, "#grad-svg")
    assert "40 tokens" in text(driver, "#grad-model-note")
    svg = driver.find_element(By.ID, "grad-svg")
    ActionChains(driver).move_to_element_with_offset(svg, -svg.size["width"] // 2 + 70, 0).perform()  # t = 0
    time.sleep(0.3)
    norms = api(base, "/api/model-gradient-norms", {"T": 40, "text": ""})["norms"]  # its own text, seed 0
    shown = text(driver, "#grad-readout [data-kind=trained]").split(": ")[1]
    assert float(shown) == pytest.approx(norms[0] / norms[-1], rel=1e-3)


def test_text_coloured_by_a_hidden_unit(page):
    driver, base = page
    click(driver, "[data-view=model]")
    WebDriverWait(driver, 20).until(lambda d: "LSTM" in d.find_element(By.ID, "model-info").text)
    sample = TEXT[:120]
    driver.execute_script("document.querySelector('#act-form [name=text]').value = arguments[0];", sample)
    click(driver, "#colour")
    wait(driver, "#coloured-text span")
    spans = driver.find_elements(By.CSS_SELECTOR, "#coloured-text span")
    data = api(base, "/api/activations", {"text": sample, "layer": 1, "state": "h", "unit": 0})
    assert len(spans) == len(sample)
    assert [float(s.get_attribute("data-v")) for s in spans] == pytest.approx(data["values"], abs=1e-12)
    buttons = driver.find_elements(By.CSS_SELECTOR, "[data-feature=bracket_depth] .unit-button")
    assert len(buttons) == 5
    buttons[0].click()
    best = data["features"]["bracket_depth"]["top"][0]
    WebDriverWait(driver, 20).until(
        lambda d: f"unit {best['unit']}" in d.find_element(By.CSS_SELECTOR, "#coloured .legend-line").text)
    driver.execute_script("document.querySelector('#gen-form [name=max_new_tokens]').value = 60;")
    click(driver, "#generate")
    wait(driver, "#generated-text span")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#generated-text span")) == 60
    shot(driver, "model")


def test_a_poem_model_uploaded_on_the_page(page, poem_file):  # noqa: F811
    driver, _ = page
    driver.find_element(By.ID, "upload").send_keys(str(poem_file))
    WebDriverWait(driver, 20).until(lambda d: "poem" in d.find_element(By.ID, "model-info").text)
    click(driver, "#lang")
    driver.execute_script("document.querySelector('#gen-form [name=acrostic]').value = '春夏秋冬';")
    click(driver, "#generate")
    wait(driver, "#generated-text span")
    poem = text(driver, "#generated-text").split("\n")
    assert [line[0] for line in poem] == list("春夏秋冬") and all(len(line) == 6 for line in poem)
    assert "诗歌模型" in text(driver, "#model-info")
    shot(driver, "poem_zh")
    click(driver, "#lang")


def test_a_classifiers_running_opinion_on_the_page(page, classifier_file):  # noqa: F811
    driver, base = page
    click(driver, "[data-view=model]")
    driver.find_element(By.ID, "upload").send_keys(str(classifier_file))
    WebDriverWait(driver, 20).until(lambda d: "text classifier" in d.find_element(By.ID, "model-info").text)
    assert not driver.find_element(By.ID, "model-body").is_displayed()
    click(driver, "#classify")  # the sample text
    wait(driver, "#clf-text span")
    sample = driver.execute_script("return document.querySelector('#clf-form [name=text]').value")
    data = api(base, "/api/classify", {"text": sample})
    spans = driver.find_elements(By.CSS_SELECTOR, "#clf-text span")
    assert [s.text for s in spans] == data["tokens"]
    assert [float(s.get_attribute("data-effect")) for s in spans] == pytest.approx(data["effects"], abs=1e-12)
    k = data["classes"].index(data["predicted"])
    assert [float(s.get_attribute("data-p")) for s in spans] == pytest.approx(
        [p[k] for p in data["probabilities"]], abs=1e-12)
    attention = [float(s.get_attribute("data-attention")) for s in spans]
    assert attention == pytest.approx(data["attention"], abs=1e-12)
    last = data["probabilities"][-1]
    predicted = f"predicted: {data['predicted']}, probability {num(max(last), 3)}"
    assert text(driver, "#clf-predicted") == predicted
    assert len(driver.find_elements(By.CSS_SELECTOR, "#clf-svg polyline")) == len(data["classes"])
    # the readout starts at the last token
    assert text(driver, "#clf-readout [data-class=pos]") == f"p(pos) = {num(last[1])}"
    driver.execute_script("document.getElementById('clf-title').scrollIntoView()")
    shot(driver, "classifier")
    driver.execute_script("window.scrollTo(0, 0)")
    click(driver, "#lang")
    assert text(driver, "#classify") == "分类" and text(driver, "#clf-predicted").startswith("预测：")
    click(driver, "#lang")
    click(driver, "[data-view=gradients]")  # a classifier has no language-model curve
    assert not driver.find_element(By.ID, "grad-model").is_displayed()
