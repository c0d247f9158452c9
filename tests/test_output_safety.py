"""Nothing lost, nothing misread (issue 17): outputs replace only what the tool wrote, a model folder is whole
or refused, and every input boundary of `textclf predict` gives the right result or one line."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import LABELS, ROOT, run_main, write_jsonl
from textclf.commands import predict
from textclf.commands.export import cli as export_cli
from textclf.common.errors import PipelineError
from textclf.io.outputs import MARKER, atomic_path, check_output

TEXTS = ["i feel so happy and content today", "this is so unfair i am furious"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what 'nothing touched' is checked against."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def classifier(tiny_model, tmp_path_factory) -> Path:
    """The tiny BERT with a six-label head, saved as the finetune stage saves it (max_length 16 recorded)."""
    import torch

    from textclf.models.loading import load_classifier, load_tokenizer, save_tokenizer

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("clf")
    load_classifier(str(tiny_model), LABELS).save_pretrained(folder, safe_serialization=True)
    save_tokenizer(load_tokenizer(str(tiny_model)), folder, max_length=16)
    return folder


def copy_model(source: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(source, target))


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = predict.cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str, pattern: str) -> str:
    import re

    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# --- 1. never delete what the command did not create ------------------------------------------


def test_check_output_refuses_what_the_tool_did_not_write(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "data" / "in").mkdir(parents=True)
    (project / "data" / "in" / "train.jsonl").write_text("{}\n")
    (project / "mine").mkdir()
    (project / "mine" / "notes.txt").write_text("keep me")
    monkeypatch.chdir(project / "data")
    before = snapshot(tmp_path)
    inputs = [project / "data" / "in"]
    cases = {
        ".": "current folder or one of its parents",
        "..": "current folder or one of its parents",
        "/": "current folder or one of its parents",
        str(project): "current folder or one of its parents",
        "in": "would replace .*which this command reads",
        "in/sub": "would replace",
        "in/train.jsonl": "would replace",
        str(project / "mine"): "did not write",
        str(project / "data"): "current folder",
    }
    for target, message in cases.items():
        with pytest.raises(PipelineError, match=message):
            with atomic_path(target, is_dir=True, inputs=inputs) as out:
                (out / "x").write_text("new")
    other_root = tmp_path / "other"
    (other_root / ".dvc").mkdir(parents=True)
    with pytest.raises(PipelineError, match="project root"):
        check_output(other_root, is_dir=True)
    with pytest.raises(PipelineError, match="is a folder; name a file"):
        check_output(project / "mine")  # a file output never replaces a folder
    (project / "file.txt").write_text("x")
    with pytest.raises(PipelineError, match="is a file, not a folder"):
        check_output(project / "file.txt", is_dir=True)
    (project / "file.txt").unlink()
    assert snapshot(tmp_path) == before


def test_marked_folders_are_replaced_and_failures_leave_the_old_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_path("out", is_dir=True) as out:
        (out / "a").write_text("1")
    assert (tmp_path / "out" / MARKER).is_file() and (tmp_path / "out" / "a").read_text() == "1"
    with atomic_path("out", is_dir=True) as out:  # its own output: replaced
        (out / "b").write_text("2")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER, "b"]
    with pytest.raises(PipelineError, match="could not write it .*nothing was replaced"):
        with atomic_path("out", is_dir=True) as out:
            raise OSError(errno.ENOSPC, "No space left on device")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER, "b"]
    assert not list(tmp_path.glob(".out.*"))


def test_unwritable_output_folder_is_one_line(tmp_path, monkeypatch):
    """A read-only folder (simulated: the tests run as root, which chmod cannot stop) is one line."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(PipelineError, match=r"out\.json: cannot write here \(Permission denied\)"):
        with atomic_path(tmp_path / "out.json"):
            pass


@pytest.mark.parametrize("where", ["cwd", "parent", "source", "inside-source", "user-folder", "project-root"])
def test_stage_outputs_refuse_and_touch_nothing(project, small_folder, where):
    """The data stage (every stage writes through atomic_path) with --out aimed at what it must not replace."""
    user = project / "results"
    user.mkdir()
    (user / "mine.csv").write_text("a,b\n")
    (project / "dvc.yaml").write_text("stages: {}\n")
    target = {
        "cwd": ".",
        "parent": "..",
        "source": str(small_folder),
        "inside-source": str(small_folder / "x"),
        "user-folder": "results",
        "project-root": str(project),
    }[where]
    before = snapshot(project.parent)
    with pytest.raises(PipelineError):
        run_main("data", "--out", target)
    assert snapshot(project.parent) == before


def test_stage_rewrites_its_own_output_and_encode_never_its_input(project):
    run_main("data")
    run_main("data")  # marked: replaced
    assert (project / "data/prepared" / MARKER).is_file()
    before = snapshot(project / "data/prepared")
    with pytest.raises(PipelineError, match="which this command reads"):
        run_main("encode", "--out", "data/prepared")
    assert snapshot(project / "data/prepared") == before


@pytest.fixture
def shipped(classifier, tmp_path, monkeypatch):
    """A project folder holding the model, its card and a user's file, as the cwd."""
    from textclf.models.loading import weights_sha256

    work = tmp_path / "proj"
    (work / ".git").mkdir(parents=True)
    model = copy_model(classifier, work / "models" / "finetuned")
    (work / "models" / "MODEL_CARD.md").write_text(f"# card\n<!-- textclf model sha256: {weights_sha256(model)} -->\n")
    (work / "notes").mkdir()
    (work / "notes" / "todo.txt").write_text("keep")
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(
    "out", [".", "..", "models/finetuned", "models/finetuned/sub", "models", "notes", "models/MODEL_CARD.md"]
)
def test_export_refuses_even_with_force(shipped, out, capsys):
    before = snapshot(shipped.parent)
    assert export_cli(["--out", out, "--force"]) == 2
    one_line(2, capsys.readouterr().err, "current folder|which this command reads|did not write|is a file")
    assert snapshot(shipped.parent) == before


def test_export_replaces_only_its_own_output_and_ships_readable_files(shipped, capsys):
    assert export_cli(["--out", "dist/clf"]) == 0
    out = shipped / "dist" / "clf"
    assert (out / "README.md").is_file() and (out / MARKER).is_file()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert set(modes.values()) <= {0o644, 0o755} and modes["model.safetensors"] == 0o644 and modes["clf"] == 0o755
    assert export_cli(["--out", "dist/clf"]) == 2 and "--force" in capsys.readouterr().err
    assert export_cli(["--out", "dist/clf", "--force"]) == 0


# --- 2. a model folder is whole or refused ---------------------------------------------------------


def _no_tokenizer(folder):
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


def _id2label_from_1(folder):
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i + 1): n for i, n in enumerate(LABELS)}
    config["label2id"] = {n: i + 1 for i, n in enumerate(LABELS)}
    (folder / "config.json").write_text(json.dumps(config))


def _small_vocab(folder):
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 1000
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_no_tokenizer, r"no tokenizer files"),
        (_id2label_from_1, r"id2label ids \[1, 2, 3, 4, 5, 6\] must run 0\.\.5"),
        (_small_vocab, r"tokenizer has \d+ tokens but the model's vocabulary .* 1000"),
    ],
)
def test_damaged_classifier_folder_refused_by_predict_and_export(
    classifier, tmp_path, capsys, breakage, message, monkeypatch
):
    folder = copy_model(classifier, tmp_path / "m")
    breakage(folder)
    one_line(*cli(capsys, "--model", str(folder), "a text")[::2], message)
    monkeypatch.chdir(tmp_path)
    assert export_cli(["--model", str(folder), "--card", str(tmp_path / "card.md"), "--out", "x"]) == 2


def test_encoder_without_head_is_not_a_classifier(tiny_model, tmp_path, capsys):
    """A plain encoder given an id2label is refused: its head would be random and unseeded."""
    folder = copy_model(tiny_model, tmp_path / "enc")
    config = json.loads((folder / "config.json").read_text())
    config.update(id2label={str(i): n for i, n in enumerate(LABELS)}, label2id={n: i for i, n in enumerate(LABELS)})
    (folder / "config.json").write_text(json.dumps(config))
    one_line(
        *cli(capsys, "--model", str(folder), "a text")[::2], r"no trained classification head \(classifier\.weight"
    )
    one_line(*cli(capsys, "--model", str(tiny_model), "a text")[::2], r"no id2label .*not a fine-tuned classifier")


def test_labels_must_agree_with_labels_json(classifier):
    from textclf.models.loading import check_model_folder

    config, tokenizer = check_model_folder(classifier, LABELS)
    assert config.num_labels == 6 and len(tokenizer) <= config.vocab_size
    with pytest.raises(PipelineError, match="are not the data's"):
        check_model_folder(classifier, list(reversed(LABELS)))


def test_checkpoint_without_tokenizer_stops_encode(project, tiny_model):
    """The README's `config.json + safetensors` checkpoint folder without tokenizer files: refused, not
    encoded with a stand-in tokenizer that makes every token unknown."""
    from conftest import write_params

    bare = copy_model(tiny_model, project / "bare")
    _no_tokenizer(bare)
    write_params(project / "params.yaml", data={"source": "sample"}, model={"checkpoint": str(bare)})
    run_main("data")
    with pytest.raises(PipelineError, match="no tokenizer files"):
        run_main("encode")
    assert not (project / "data" / "encoded").exists()


# --- 3. every input boundary of predict -------------------------------------------------------------


@pytest.mark.parametrize("name", ["in.txt", "in.csv", "in.tsv", "in.jsonl", "in.json", "in.json-strings", "in"])
def test_formats_by_suffix_with_bom_and_crlf(classifier, tmp_path, capsys, name):
    """Every text format, written by a Windows editor (BOM + CRLF), gives the same rows and other columns
    exactly as written (007 stays 007, 1.10 stays 1.10, NA stays NA)."""
    texts = ["i love it, really", 'she said "hi"']
    path = tmp_path / name.replace("-strings", "")
    content = {
        "in.txt": "\r\n".join(texts) + "\r\n",
        "in": "\r\n".join(texts) + "\r\n",
        "in.csv": 'id,text,price\r\n007,"i love it, really",1.10\r\nNA,"she said ""hi""",\r\n',
        "in.tsv": 'id\ttext\tprice\r\n007\ti love it, really\t1.10\r\nNA\tshe said "hi"\t\r\n',  # no quoting
        "in.jsonl": '{"id": "007", "text": "i love it, really", "price": 1.10}\r\n'
        '{"id": "NA", "text": "she said \\"hi\\"", "price": NaN}\r\n',
        "in.json": '[{"id": "007", "text": "i love it, really", "price": 1.10},\r\n'
        ' {"id": "NA", "text": "she said \\"hi\\"", "price": null}]\r\n',
        "in.json-strings": json.dumps(texts),
    }[name]
    path.write_bytes(b"\xef\xbb\xbf" + content.encode())
    code, out, err = cli(capsys, "--model", str(classifier), "--input", str(path))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == texts and all(r["label"] in LABELS for r in rows)
    if name in ("in.csv", "in.tsv", "in.jsonl", "in.json"):
        assert [r["id"] for r in rows] == ["007", "NA"]
        assert rows[0]["price"] == (1.1 if name.startswith("in.json") else "1.10")
        assert '"price": 1.10' in out if name.startswith("in.json") else True  # the number as written
        assert rows[1]["price"] in ("", None) and "NaN" not in out


def test_unknown_suffix_and_bad_json_shapes_are_one_line(classifier, tmp_path, capsys):
    for name, content, message in [
        ("in.xlsx", "x", r"unknown input format '\.xlsx'"),
        ("in.json", '{"text": "x"}', r"in\.json: expected a JSON array"),
        ("in.json", '["a", 3]', r"in\.json: item 2: expected a JSON object or a text, found a number"),
        ("in.jsonl", '{"text": "a"}\n[1]\n', r"in\.jsonl: line 2: expected a JSON object"),
        ("in.txt", None, r"in\.txt: line 2: not valid UTF-8"),
    ]:
        path = tmp_path / name
        path.write_bytes(b"ok\n\xff\xfe bad\n" if content is None else content.encode())
        one_line(*cli(capsys, "--model", str(classifier), "--input", str(path))[::2], message)


def test_output_is_valid_json_from_parquet_nan_and_lone_surrogates(classifier, tmp_path, capsys, caplog):
    source = tmp_path / "in.parquet"
    pd.DataFrame({"text": ["happy day", "sad"], "x": [float("nan"), 2.5]}).to_parquet(source)
    code, out, err = cli(capsys, "--model", str(classifier), "--input", str(source))
    assert code == 0 and "NaN" not in out and [json.loads(line)["x"] for line in out.splitlines()] == [None, 2.5]
    half_emoji = tmp_path / "tweets.jsonl"
    half_emoji.write_text('{"text": "so happy \\ud83d"}\n{"text": "fine"}\n')
    code, out, err = cli(
        capsys, "--model", str(classifier), "--input", str(half_emoji), "--output", str(tmp_path / "o.csv")
    )
    assert code == 0 and "tweets.jsonl: line 1: a lone surrogate" in caplog.text
    code, out, err = cli(capsys, "--model", str(classifier), "so happy \ud83d")
    assert code == 0 and "\ufffd" in json.loads(out)["text"] and "arguments: a lone surrogate" in caplog.text
    assert pd.read_csv(tmp_path / "o.csv")["text"].tolist() == ["so happy \ufffd", "fine"]


def test_max_length_defaults_to_the_trained_length_and_is_capped(classifier, capsys, caplog):
    model, tokenizer = predict.load_model(classifier)
    assert predict.max_input_tokens(model, tokenizer) == 16, "the encode stage's model.max_length, recorded"
    assert predict.max_input_tokens(model, tokenizer, 40) == 40
    long_text = " ".join(["happy"] * 200)
    code, out, err = cli(capsys, "--model", str(classifier), "--max-length", "100000", long_text)
    assert code == 0 and "beyond the model's 64 positions" in caplog.text and json.loads(out)["label"] in LABELS


def test_predict_output_folder_means_a_file_inside_it(classifier, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    (results / "mine.txt").write_text("keep")
    source = write_jsonl(tmp_path / "tweets.jsonl", [{"text": t} for t in TEXTS])
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "--model", str(classifier), "--input", str(source), "--output", "results")
    assert code == 0, err
    assert (results / "mine.txt").read_text() == "keep"
    assert len((results / "tweets.labelled.jsonl").read_text().splitlines()) == 2
    code, _, err = cli(capsys, "--model", str(classifier), "--output", "new/", "--format", "csv", "a text")
    assert code == 0 and (tmp_path / "new" / "predictions.csv").is_file()
    before = snapshot(tmp_path)
    for target, message in [
        (".", "is a folder|current folder"),
        (str(source), "which this command reads"),
        (str(classifier / "out.jsonl"), "which this command reads"),
    ]:
        code, out, err = cli(capsys, "--model", str(classifier), "--input", str(source), "--output", target)
        if target == ".":  # the current folder: a file inside it, never the folder replaced
            assert code == 0 and (tmp_path / "tweets.labelled.jsonl").is_file()
            (tmp_path / "tweets.labelled.jsonl").unlink()
        else:
            one_line(code, err, message)
    assert snapshot(tmp_path) == before


def test_full_disk_leaves_no_partial_output(classifier, tmp_path, capsys, monkeypatch):
    target = tmp_path / "out.jsonl"
    target.write_text("the previous run\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predict, "_write", full)
    one_line(
        *cli(capsys, "--model", str(classifier), "--output", str(target), "a text")[::2],
        r"out\.jsonl: could not write it: No space left on device",
    )
    assert target.read_text() == "the previous run\n" and not list(tmp_path.glob(".out.jsonl.*"))


def _run(classifier, *args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "textclf", "predict", "--model", str(classifier), *args],
        capture_output=True,
        env=env,
        timeout=300,
        **kwargs,
    )


def test_stdin_bad_bytes_closed_stdin_and_full_stdout(classifier):
    """Real streams: invalid UTF-8 on stdin, descriptor 0 or 1 closed, stdout on /dev/full: one line each, exit 2."""
    bad = _run(classifier, input=b"\xef\xbb\xbfgood line\r\nbad \xff byte\n")
    assert bad.returncode == 2 and bad.stderr.decode().strip().splitlines() == [
        "error: stdin: line 2: not valid UTF-8 (byte 0xff); save it as UTF-8"
    ]
    closed = _run(classifier, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 2 and closed.stderr.decode().strip().startswith("error: no texts")
    assert len(closed.stderr.decode().strip().splitlines()) == 1
    no_stdout = _run(classifier, "a text", preexec_fn=lambda: os.close(1))
    assert no_stdout.returncode == 2 and no_stdout.stderr.decode().strip().splitlines() == [
        "error: stdout is closed: write the labelled rows with --output FILE"
    ]
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "textclf", "predict", "--model", str(classifier), "a text"],
            stdout=full,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], lines


def test_a_json_number_is_not_a_text(classifier, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"text": 3}\n')
    one_line(
        *cli(capsys, "--model", str(classifier), "--input", str(source))[::2],
        r"in\.jsonl: line 2: 'text' is empty or not a string",
    )


def test_finetune_state_root_keeps_what_is_not_its_state(tmp_path):
    """finetune --state removes stale training state (fingerprint folders), never other files there."""
    from textclf.training.trainer import resumable_state

    (tmp_path / "0123456789abcdef").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    (tmp_path / "file.txt").write_text("keep")
    state_dir, resume = resumable_state(tmp_path, "fedcba9876543210")
    assert resume is None and state_dir == tmp_path / "fedcba9876543210"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "notes"]


def test_a_file_the_user_put_in_an_output_folder_is_never_replaced(tmp_path, monkeypatch):
    """The marker lists what the command wrote: a folder holding anything else is refused, left as it is."""
    monkeypatch.chdir(tmp_path)
    with atomic_path("out", is_dir=True) as out:
        (out / "model.bin").write_text("1")
        (out / "sub").mkdir()
        (out / "sub" / "a").write_text("2")
    with atomic_path("out", is_dir=True) as out:  # only what it wrote: replaced
        (out / "model.bin").write_text("3")
    (tmp_path / "out" / "notes.md").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(PipelineError, match=r"^out: holds notes\.md that textclf did not write"):
        with atomic_path("out", is_dir=True) as out:
            (out / "model.bin").write_text("4")
    assert snapshot(tmp_path) == before


def test_two_commands_writing_one_output_never_delete_each_others_work(tmp_path, monkeypatch):
    """The second refuses in one line while the first writes; the first's output is whole."""
    monkeypatch.chdir(tmp_path)
    with atomic_path("out", is_dir=True) as first:
        (first / "a").write_text("first")
        for is_dir in (True, False):
            with pytest.raises(PipelineError, match=r"^out: another command is writing it now"):
                with atomic_path("out", is_dir=is_dir) as second:
                    (second / "a").write_text("second")
        assert (first / "a").read_text() == "first"
    assert (tmp_path / "out" / "a").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock or temporary left
    with atomic_path("out", is_dir=True) as third:  # once the first is done, the next one writes
        (third / "a").write_text("third")
    assert (tmp_path / "out" / "a").read_text() == "third"
