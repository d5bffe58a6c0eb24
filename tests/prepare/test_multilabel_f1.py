"""The F1 averages of scripts/prepare/multilabel_f1.py on a predictions CSV worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.prepare.conftest import load_script


def test_the_four_averages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # predicted at 0.5: s1 {A, B} (true {A}); s2 {B} (true {A, B}); s3 {} (true {B}); s4 unknown: left out
    # A: tp 1, fp 0, fn 1 -> 2/3; B: tp 1, fp 1, fn 1 -> 1/2; micro: tp 2, fp 1, fn 2 -> 4/7
    # samples: 2/3, 2/3, 0 -> 4/9; weighted (2 true each) = macro = 7/12
    csv = tmp_path / "predictions.csv"
    csv.write_text(
        "id,prob_A,prob_B,label_A,label_B\ns1,0.9,0.6,1,0\ns2,0.2,0.7,1,1\ns3,0.1,0.4,0,1\ns4,0.9,0.9,,\n"
    )
    assert load_script("multilabel_f1").main(["--predictions", str(csv)]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    assert float(printed["micro_f1"]) == pytest.approx(4 / 7, abs=1e-4)
    assert float(printed["macro_f1"]) == pytest.approx(7 / 12, abs=1e-4)
    assert float(printed["weighted_f1"]) == pytest.approx(7 / 12, abs=1e-4)
    assert float(printed["samples_f1"]) == pytest.approx(4 / 9, abs=1e-4)


def test_a_prefixed_task_and_a_csv_without_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "predictions.csv"
    csv.write_text("id,genres/prob_A,genres/label_A\ns1,0.7,1\ns2,0.6,0\n")
    load_script("multilabel_f1").main(["--predictions", str(csv), "--task", "genres", "--threshold", "0.65"])
    assert "micro_f1 1.0000" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no prob_<label> and label_<label> columns"):
        load_script("multilabel_f1").main(["--predictions", str(csv)])
