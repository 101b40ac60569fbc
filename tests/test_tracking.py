"""A resumed run continues its wandb run: the id kept in the output folder is reused (offline mode, no network)."""

from __future__ import annotations

from irg_rl.train.tracking import init_wandb


def test_second_init_in_the_same_folder_continues_the_same_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    first = init_wandb(tmp_path, "irg-rl-test", "run", {"a": 1}, "offline")
    run_id = first.id
    first.finish()
    assert (tmp_path / "wandb_run_id").read_text() == run_id
    second = init_wandb(tmp_path, "irg-rl-test", "run", {"a": 1}, "offline")
    assert second.id == run_id
    second.finish()
    other = init_wandb(tmp_path / "other", "irg-rl-test", "run", {"a": 1}, "offline")
    assert other.id != run_id
    other.finish()
