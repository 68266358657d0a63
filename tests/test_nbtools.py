import pytest

from labkit.nbtools import Timer, expect, expect_between, hardware


def test_expect_prints_the_expectation_not_the_measurement(capsys):
    expect("KD loss of identical logits", 3e-8, 0.0, tol=1e-6)
    expect("shape", (2, 3), (2, 3))
    out = capsys.readouterr().out
    assert "OK  KD loss of identical logits: 0.0000 (tolerance 1e-06)" in out and "3e-08" not in out
    assert "OK  shape: (2, 3)" in out


def test_expect_raises_on_failure():
    with pytest.raises(AssertionError, match="got 0.5000, expected 0.0"):
        expect("loss", 0.5, 0.0)
    with pytest.raises(AssertionError, match="expected within"):
        expect_between("teacher accuracy", 0.3, 0.8, 1.0)


def test_timer_and_hardware():
    with Timer() as t:
        sum(range(1000))
    assert t.seconds >= 0
    assert "cores" in hardware()
