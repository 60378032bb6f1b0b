"""Validation: the best step (--select, ties by loss), early stopping (--patience), and what training records."""

import dataclasses

import pytest
from helpers import tiny_config

from s2s_cli.training.runner import train
from s2s_cli.training.validation import is_better, selection_score


def test_bleu_ties_go_to_the_lower_validation_loss():
    score = selection_score
    assert is_better(score("bleu", 0.0, 4.0), score("bleu", 0.0, 5.0))  # BLEU still 0, loss falling
    assert is_better(score("bleu", 1.0, 6.0), score("bleu", 0.0, 4.0))  # BLEU decides first
    assert not is_better(score("bleu", 0.0, 5.0), score("bleu", 0.0, 5.0))
    assert not is_better(score("loss", 9.0, 5.0), score("loss", 0.0, 4.0))  # --select loss ignores BLEU
    assert is_better(score("bleu", 2.0, 5.0), None)
    assert is_better(score("bleu", 2.0, 5.0), 1.5)  # a checkpoint's single number from before
    assert not is_better(score("bleu", 1.0, 5.0), 1.5)


@pytest.fixture
def scripted_bleu(monkeypatch):
    """Validation BLEU as a test dictates, one value per validation."""

    def script(values):
        scores = iter(values)
        from s2s_cli.training import validation

        original = validation.score
        monkeypatch.setattr(validation, "score", lambda *args: dataclasses.replace(original(*args), bleu=next(scores)))

    return script


def test_patience_stops_training(run, scripted_bleu):
    scripted_bleu([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    result = train(run, tiny_config(run, valid_every=1, patience=2, epochs=50))
    assert result.stopped == "patience" and result.steps == 3 and result.best_step == 1
    assert result.best_valid_bleu == 5.0 and result.valid_bleu == 3.0  # the best validation's and the last one's
    assert [r.best_step for r in run.history()] == [1, 1, 1]


def test_the_best_validation_is_the_step_training_chose(run, scripted_bleu):
    """Equal BLEU twice: training keeps the later step (lower loss); the run dir names that one as the best."""
    scripted_bleu([0.0, 7.0, 7.0, 1.0])
    train(run, tiny_config(run, valid_every=1, max_steps=4, epochs=50))
    history = run.history()
    assert [r.bleu for r in history] == [0.0, 7.0, 7.0, 1.0]
    assert history[2].valid_loss < history[1].valid_loss
    assert history[-1].best_step == 3 and run.best_validation().step == 3
