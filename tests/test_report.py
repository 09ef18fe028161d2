"""`synth report` over real run folders: pipelines run with the fake engine on Ray (with a
quality filter, exact dedup, verify_math on the sample math problems), curation commands,
`synth verify math` on distillation-like rows with a teacher column, and hand-written
training folders. The page is parsed back, its PNGs decoded, its numbers checked against the
manifests, and (when Chromium is installed) rendered in a real headless browser.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from synth.cli import app
from synth.config import load_pipeline
from synth.io.shards import read_shards, write_json_atomic, write_shard
from synth.metrics import pass_at_k_table
from synth.report import build_report
from synth.report.browser import dump_dom, find_chromium
from synth.pipeline.run import run_pipeline
from tests.conftest import ROOT, SAMPLE, write_pipeline

runner = CliRunner()

DATA_PLOTS = ["rows", "lengths", "verdicts", "passk", "clusters", "teachers"]
# per data folder: the plots that must be drawn; the others must be a note
DRAWN = {
    "rephrase": {"rows", "lengths", "clusters", "teachers"},
    "rephrase_long": {"rows", "lengths", "clusters", "teachers"},
    "math": {"rows", "lengths", "verdicts", "passk", "teachers"},
    "distill_data": {"rows", "lengths", "verdicts", "passk", "teachers"},
}
# distill_data: 3 prompts x 4 samples, answers (problem 1: 12, 2: 7, 3: 5) -> solved per prompt 2, 0, 4
DISTILL = [("p1", "12", ["\\boxed{12}", "\\boxed{13}", "so \\boxed{12}", "I don't know"]),
           ("p2", "7", ["\\boxed{8}", "\\boxed{9}", "\\boxed{6}", "\\boxed{1}"]),
           ("p3", "5", ["\\boxed{5}"] * 4)]


# --------------------------------------------------------------------------- building run folders


def _seeds(base: Path) -> Path:
    """Six documents, two of them copied under a second name: their prompts are identical, so
    the fake engine's responses are exact duplicates for dedup to find."""
    seeds = base / "seeds"
    seeds.mkdir()
    names = ["science_vaccines.md", "history_silk_road.md", "programming_git.md", "math_probability.md"]
    for n in names:
        shutil.copy(SAMPLE / "seeds" / n, seeds / n)
    shutil.copy(SAMPLE / "seeds" / names[0], seeds / ("copy_of_" + names[0]))
    shutil.copy(SAMPLE / "seeds" / names[1], seeds / ("copy_of_" + names[1]))
    return seeds


def _metrics(path: Path, mode: str, steps: int, kd: bool, cut_last: bool = False) -> None:
    path.mkdir(parents=True)
    lines = []
    for s in range(1, steps + 1):
        loss = 6.0 / s ** 0.35
        lines.append({"split": "train", "step": s, "tokens": s * 2048, "loss": loss, "ce": loss * 0.9,
                      "mtp": loss * 0.1, "kd": loss * 0.5 if kd else None, "lr": 1e-3, "tok_per_s": 900.0 + s})
        if s % 5 == 0:
            lines.append({"split": "eval", "step": s, "tokens": s * 2048, "eval_loss": loss * 1.05})
    text = "".join(json.dumps(r) + "\n" for r in lines)
    (path / "metrics.jsonl").write_text(text + ('{"split": "train", "ste' if cut_last else ""))
    (path / "train.json").write_text(json.dumps({"mode": mode, "lr": 1e-3, "steps": steps}))


@pytest.fixture(scope="module")
def run_root(tmp_path_factory, ray_session) -> Path:
    base = tmp_path_factory.mktemp("report")
    root = base / "full"
    pipe = write_pipeline(
        base / "rephrase.yaml", name="rephrase",
        seeds={"path": str(_seeds(base)), "chunk_tokens": 0},
        prompt={"template": "rephrase_qa"},
        model={"name": "fake", "backend": "fake", "batch_size": 4},
        sampling={"n": 2, "max_tokens": 16},
        stages=[{"quality_filter": {"groups": ["gen"], "min_words": 6}}],
        dedup={"method": "exact", "column": "response"},
    )
    run_pipeline(load_pipeline(pipe), out=root / "rephrase")
    pipe = write_pipeline(
        base / "math.yaml", name="math",
        seeds={"path": str(SAMPLE / "math" / "problems.jsonl"), "text_column": "problem", "chunk_tokens": 0},
        prompt={"template": "math_solution"},
        # the first problem's answer is 22: its samples are correct, the others incorrect
        model={"name": "fake", "backend": "fake", "batch_size": 4,
               "engine_kwargs": {"constant": "Adding up, the answer is \\boxed{22}."}},
        sampling={"n": 4, "max_tokens": 32},
        stages=[{"verify_math": {"reference_column": "answer", "timeout": 5}}],
    )
    run_pipeline(load_pipeline(pipe), out=root / "math", limit=8)
    r = runner.invoke(app, ["filter", str(root / "rephrase"), str(root / "rephrase_long"), "--min-words", "9"])
    assert r.exit_code == 0, r.output
    rows = [(pid, ans, resp, t) for pid, ans, resps in DISTILL for resp, t in zip(resps, ["big", "big", "small", "small"])]
    write_shard(pa.table({
        "id": [f"{pid}-{i}" for i, (pid, *_) in enumerate(rows)],
        "prompt_id": [r[0] for r in rows], "task": ["math_solution"] * len(rows),
        "response": [r[2] for r in rows], "meta": [json.dumps({"answer": r[1]}) for r in rows],
        "completion_tokens": pa.array([len(r[2].split()) for r in rows], pa.int32()),
        "model": ["student"] * len(rows), "teacher": [r[3] for r in rows],
    }), base / "distill_in", "part-000000.parquet")
    r = runner.invoke(app, ["verify", "math", str(base / "distill_in"), str(root / "distill_data")])
    assert r.exit_code == 0, r.output
    _metrics(root / "pretrain", "pretrain", 40, kd=False)
    _metrics(root / "distill", "distill", 20, kd=True, cut_last=True)
    r = runner.invoke(app, ["report", str(root)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"report: {root / 'report.html'}"
    return root


# --------------------------------------------------------------------------- reading the page back


class Page(HTMLParser):
    """Figures by id (title, img attributes or note), the summary table, the body attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.table: list[list[str]] = []
        self.body: dict = {}
        self.imgs: list[dict] = []
        self._fig = self._in = None
        self._cell: list[str] | None = None
        self._in_summary = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "figure":
            self._fig = self.figures.setdefault(a["id"], {"title": "", "img": None, "note": None})
        elif tag == "img":
            self.imgs.append(a)
            if self._fig is not None:
                self._fig["img"] = a
        elif tag in ("h3", "p") and self._fig is not None:
            self._in = "title" if tag == "h3" else "note"
            self._fig[self._in] = ""
        elif tag == "table" and a.get("id") == "summary-table":
            self._in_summary = True
        elif tag == "tr" and self._in_summary:
            self.table.append([])
        elif tag in ("th", "td") and self._in_summary:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "figure":
            self._fig = None
        elif tag in ("h3", "p"):
            self._in = None
        elif tag == "table":
            self._in_summary = False
        elif tag in ("th", "td") and self._cell is not None:
            self.table[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._fig is not None and self._in:
            self._fig[self._in] += data

    def summary(self) -> dict[str, dict[str, str]]:
        head, *rows = self.table
        return {r[0]: dict(zip(head, r)) for r in rows}


def _page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def _decode(img: dict) -> Image.Image:
    src = img["src"]
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.split(",", 1)[1], validate=True)
    im = Image.open(io.BytesIO(png))
    im.load()
    return im


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# --------------------------------------------------------------------------- the page


def test_every_expected_plot_is_drawn_or_explained(run_root):
    page = _page(run_root / "report.html")
    expected = {"summary-rows", "summary-loss", "pretrain-loss", "distill-loss"}
    expected |= {f"{name}-{p}".replace("_", "-") for name in DRAWN for p in DATA_PLOTS}
    assert expected <= set(page.figures), expected - set(page.figures)
    for fid in sorted(expected):
        fig = page.figures[fid]
        name, _, plot = fid.rpartition("-")
        drawn = fid.startswith("summary") or plot == "loss" or plot in DRAWN[name.replace("-", "_")]
        assert fig["title"].strip(), fid
        if drawn:
            assert fig["img"] is not None, (fid, fig["note"])
            assert fig["img"]["alt"].strip(), fid
            im = _decode(fig["img"])
            assert im.size == (int(fig["img"]["width"]), int(fig["img"]["height"]))
            assert im.width >= 500 and im.height >= 150, (fid, im.size)
            colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
            assert len(colors) >= 20, (fid, len(colors))  # axes, text, bars: not a blank image
            white = max(n for n, c in colors if c == (255, 255, 255))
            assert white < 0.97 * im.width * im.height, fid
        else:
            assert fig["img"] is None and fig["note"].strip(), fid
    # why a plot is absent, in words
    assert "run a verify stage" in page.figures["rephrase-verdicts"]["note"]
    assert "run dedup" in page.figures["math-clusters"]["note"]
    assert page.figures["distill-data-teachers"]["title"].startswith("Teacher mix")
    assert page.figures["math-teachers"]["title"] == "Rows per model"
    assert len(page.imgs) == sum(f["img"] is not None for f in page.figures.values())


def test_summary_numbers_match_the_manifests(run_root):
    table = _page(run_root / "report.html").summary()
    assert set(table) == {"rephrase", "rephrase_long", "math", "distill_data", "pretrain", "distill"}
    for name in DRAWN:
        m = _manifest(run_root / name)
        row = table[name]
        assert int(row["rows kept"]) == m["counts"]["rows"]
        assert int(row["rows dropped"]) == m["counts"]["rejected_rows"]
        for column, counts in m["counts"]["verdicts"].items():
            for verdict, n in counts.items():
                assert f"{verdict} {n} (" in row["verdicts"], (name, row["verdicts"])
    for name in ("rephrase", "math"):  # pipelines record their tokens
        assert int(table[name]["tokens"]) == _manifest(run_root / name)["counts"]["completion_tokens"]
    rephrase = _manifest(run_root / "rephrase")["counts"]
    assert rephrase["rejected_rows"] > 0 and set(rephrase["reject_reasons"]) == {"gen.too_short", "exact_duplicate"}
    assert table["rephrase"]["verdicts"] == table["rephrase"]["pass@k"] == "-"
    assert table["math"]["status"] == "complete"


def test_pass_at_k_in_the_summary(run_root):
    table = _page(run_root / "report.html").summary()
    # distill_data, by hand: prompts solved 2/4, 0/4, 4/4
    # pass@1 = (0.5 + 0 + 1) / 3; pass@2 = (1 - C(2,2)/C(4,2) + 0 + 1) / 3; pass@4 = (1 + 0 + 1) / 3
    want = {"pass@1": 0.5, "pass@2": (1 - 1 / 6 + 1) / 3, "pass@4": 2 / 3}
    assert table["distill_data"]["pass@k"] == "math_verdict: " + ", ".join(f"{k} {v:.3f}" for k, v in want.items())
    # math: recomputed from the shards
    t = read_shards(run_root / "math", columns=["prompt_id", "math_verdict"])
    got = pass_at_k_table(t["prompt_id"].to_pylist(), [v == "correct" for v in t["math_verdict"].to_pylist()], (1, 2, 4))
    assert 0 < got["pass@1"] < 1
    assert table["math"]["pass@k"] == "math_verdict: " + ", ".join(f"{k} {v:.3f}" for k, v in got.items())


def test_training_rows_and_loss_curves(run_root):
    page = _page(run_root / "report.html")
    table = page.summary()
    assert table["pretrain"]["kind"] == "train (pretrain)" and table["distill"]["kind"] == "train (distill)"
    last = 6.0 / 40 ** 0.35
    assert table["pretrain"]["final train loss"] == f"{last:.4f}"
    assert table["pretrain"]["final eval loss"] == f"{last * 1.05:.4f}"
    assert int(table["pretrain"]["tokens"]) == 40 * 2048
    assert "40 train points, 8 eval points" in page.figures["pretrain-loss"]["img"]["alt"]
    # the cut-off last line of distill's metrics.jsonl is skipped, not fatal
    assert "20 train points, 4 eval points" in page.figures["distill-loss"]["img"]["alt"]
    text = (run_root / "report.html").read_text()
    assert "unreadable lines</dt><dd>1<" in text


def test_dedup_and_reasons_in_the_plots(run_root):
    page = _page(run_root / "report.html")
    m = _manifest(run_root / "rephrase")["counts"]
    alt = page.figures["rephrase-rows"]["img"]["alt"]
    for reason, n in m["reject_reasons"].items():
        assert f"{reason}: {n}" in alt
    # two seed documents were copied: their samples form clusters of 2 rows
    clusters = page.figures["rephrase-clusters"]["img"]["alt"]
    assert "largest 2 rows" in clusters and " 0 with duplicates" not in clusters
    teachers = page.figures["distill-data-teachers"]["img"]["alt"]
    assert teachers == "big: 6; small: 6"


def test_page_is_self_contained(run_root):
    text = (run_root / "report.html").read_text()
    for ref in ("http://", "https://", "<link", "@import", "url("):
        assert ref not in text, ref
    assert "<script src" not in text


# --------------------------------------------------------------------------- absent and bad data


def test_absent_data_gives_notes_not_a_crash(tmp_path):
    root = tmp_path / "odd"
    for d in ("no_shards", "bare", "broken", "empty_train"):
        (root / d).mkdir(parents=True)
    write_json_atomic({"pipeline": "half", "status": "running"}, root / "no_shards" / "manifest.json")
    write_shard(pa.table({"id": ["a", "b"], "response": ["hello there", "héllo"]}), root / "bare", "part-000000.parquet")
    write_json_atomic({"stage": "quality_filter"}, root / "bare" / "manifest.json")
    (root / "broken" / "manifest.json").write_text("{not json")
    (root / "empty_train" / "metrics.jsonl").write_text("")
    # verdicts on rows without prompt ids: rates yes, pass@k no
    write_shard(pa.table({"id": ["1", "2"], "response": ["\\boxed{1}", "\\boxed{2}"],
                          "meta": [json.dumps({"answer": "1"})] * 2}), tmp_path / "graded_in", "part-000000.parquet")
    assert runner.invoke(app, ["verify", "math", str(tmp_path / "graded_in"), str(root / "graded")]).exit_code == 0
    out = build_report(root, tmp_path / "elsewhere" / "r.html")
    assert out == tmp_path / "elsewhere" / "r.html" and not (root / "report.html").exists()
    page = _page(out)
    table = page.summary()
    assert table["no_shards"]["status"] == "running" and table["no_shards"]["rows kept"] == "0"
    assert page.figures["no-shards-rows"]["note"].startswith("no rows")
    assert table["broken"]["status"] == "error"
    assert "corrupt manifest" in out.read_text()
    # a shard with only id and response: lengths in characters, the rest explained
    bare = {k: page.figures[f"bare-{k}"] for k in DATA_PLOTS}
    assert bare["rows"]["img"] and bare["lengths"]["img"]
    assert "2 rows, median" in bare["lengths"]["img"]["alt"] and "characters" in bare["lengths"]["img"]["alt"]
    for k in ("verdicts", "passk", "clusters", "teachers"):
        assert bare[k]["img"] is None and bare[k]["note"], k
    assert table["bare"]["tokens"] == "-"
    assert page.figures["graded-verdicts"]["img"] and "prompt ids" in page.figures["graded-passk"]["note"]
    assert table["graded"]["verdicts"] == "math_verdict: correct 1 (50.0%), incorrect 1 (50.0%)"
    assert page.figures["empty-train-loss"]["note"].startswith("no loss yet")
    assert "summary-loss" in page.figures and page.figures["summary-loss"]["img"] is None


def test_one_sample_per_prompt_has_no_pass_at_k_plot(tmp_path):
    src = tmp_path / "in"
    write_shard(pa.table({"id": ["1", "2"], "prompt_id": ["a", "b"], "response": ["\\boxed{1}", "\\boxed{3}"],
                          "meta": [json.dumps({"answer": "1"})] * 2}), src, "part-000000.parquet")
    assert runner.invoke(app, ["verify", "math", str(src), str(tmp_path / "v")]).exit_code == 0
    page = _page(build_report(tmp_path / "v"))
    assert "sampling.n > 1" in page.figures["v-passk"]["note"]
    assert page.summary()["v"]["pass@k"] == "math_verdict: pass@1 0.500"


@pytest.mark.parametrize("case", ["missing", "empty", "out_is_dir", "plain_file"])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, case):
    args = ["report", str(tmp_path / "nope")]
    if case == "empty":
        (tmp_path / "e" / "sub").mkdir(parents=True)
        args = ["report", str(tmp_path / "e")]
    elif case == "out_is_dir":
        _metrics(tmp_path / "t", "pretrain", 3, kd=False)
        args = ["report", str(tmp_path / "t"), "--out", str(tmp_path)]
    elif case == "plain_file":
        (tmp_path / "x.txt").write_text("hi")
        args = ["report", str(tmp_path / "x.txt")]
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert not list(tmp_path.rglob("report.html"))


def test_reads_only_the_columns_it_needs(run_root, monkeypatch):
    import pyarrow.parquet as pq

    asked: list = []
    real = pq.read_table

    def spy(source, *a, columns=None, **kw):
        asked.append(columns)
        return real(source, *a, columns=columns, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    build_report(run_root / "math", run_root.parent / "math_only.html")
    assert asked and all(cols is not None for cols in asked)
    read = {c for cols in asked for c in cols}
    assert not read & {"response", "seed_text", "messages", "token_ids", "top_logprobs", "meta"}


def test_import_stays_light():
    code = ("import sys, synth.report.html, synth.report.browser, synth.metrics, synth.cli.report_cmd; "
            "print(sorted(m for m in ('matplotlib', 'pyarrow', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- a real browser


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (run `make browser`)")
def test_chromium_renders_every_plot(run_root, tmp_path):
    page_path = run_root / "report.html"
    imgs = _page(page_path).imgs
    dom = Page(dump_dom(page_path))  # the DOM after the page's own load handler ran
    assert dom.body.get("data-images-rendered") == f"{len(imgs)}/{len(imgs)}"
    assert [i.get("data-rendered") for i in dom.imgs] == [f"{i['width']}x{i['height']}" for i in imgs]

    r = runner.invoke(app, ["report", str(run_root), "--out", str(tmp_path / "r.html"),
                            "--screenshot", str(tmp_path / "shot.png")])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == f"screenshot: {tmp_path / 'shot.png'}"
    shot = Image.open(tmp_path / "shot.png").convert("RGB")
    assert shot.size == (1280, 2400)
    colors = shot.getcolors(maxcolors=1 << 22)
    assert len(colors) > 500  # text, bars, lines, antialiasing: a rendered page, not a blank one
    white = max(n for n, c in colors if c == (255, 255, 255))
    assert white < 0.9 * 1280 * 2400
    # the plots' own colors are on screen: the green of "kept" bars and the red of eval loss
    present = {c for _, c in colors}
    assert (0x2E, 0x9D, 0x5B) in present and (0xD0, 0x43, 0x3A) in present


def test_screenshot_without_chromium_is_a_user_error(tmp_path, monkeypatch):
    import synth.report.browser as browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    _metrics(tmp_path / "t", "pretrain", 3, kd=False)
    r = runner.invoke(app, ["report", str(tmp_path / "t"), "--screenshot", str(tmp_path / "s.png")])
    assert r.exit_code == 2 and "make browser" in r.output
    assert r.output.splitlines()[0] == f"report: {tmp_path / 't' / 'report.html'}"  # the page is still written
    assert not (tmp_path / "s.png").exists()
