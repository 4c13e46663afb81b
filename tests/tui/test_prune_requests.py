"""The Prune pane's request bookkeeping without an app: which commands go to the engine in
which order, which answers are the pane's, and what the status line says."""

from __future__ import annotations

from core import messages as msg
from core.values import SWEEP_LEVELS
from tui.prune_requests import Answer, Echoes, PruneRequests, keys_text, no_model_hint


def _requests() -> tuple[PruneRequests, list[msg.Command]]:
    sent: list[msg.Command] = []
    return PruneRequests(sent.append), sent


def _kinds(sent: list[msg.Command]) -> list[str]:
    return [type(c).__name__ for c in sent]


def test_a_fast_slider_sends_one_prune_and_then_only_the_newest_position() -> None:
    r, sent = _requests()
    r.prune(("magnitude", 10))
    r.prune(("magnitude", 20))
    r.prune(("magnitude", 30))
    assert sent == [msg.PruneTo("magnitude", 0.1)]
    assert r.pruning and r.wanted == ("magnitude", 30)
    assert r.measuring() == "magnitude 30%"  # (what the user asked for last)
    answer = r.compressed(sent[0].request_id)
    assert answer == Answer("prune", ("magnitude", 10), newest=True)
    assert sent[1:] == [msg.PruneTo("magnitude", 0.3)] and r.wanted is None
    assert r.compressed(sent[1].request_id) == Answer("prune", ("magnitude", 30), True)
    assert not r.pruning and r.measuring() == "" and len(sent) == 2


def test_moving_back_to_the_position_in_flight_wants_nothing_more() -> None:
    r, sent = _requests()
    r.prune(("global", 10))
    r.prune(("global", 20))
    r.prune(("global", 10))
    assert r.wanted is None
    r.compressed(sent[0].request_id)
    assert len(sent) == 1


def test_an_older_answer_is_never_the_newest_shown() -> None:
    r, sent = _requests()
    r.prune(("magnitude", 10))
    r.prune(("magnitude", 20), now=True)
    assert len(sent) == 2
    assert r.compressed(sent[1].request_id).newest
    late = r.compressed(sent[0].request_id)
    assert late is not None and not late.newest
    assert r.compressed(sent[0].request_id) is None  # (answered already)


def test_a_request_made_meanwhile_goes_after_the_position_wanted() -> None:
    """A fine-tune, int8 or write is for the copy at the newest position: that PruneTo is
    sent first."""
    for ask, command in ((lambda r: r.finetune(5), msg.FineTune(5)),
                         (PruneRequests.quantize, msg.Quantize()),
                         (PruneRequests.save, msg.SaveCompressed())):
        r, sent = _requests()
        r.prune(("magnitude", 10))
        r.prune(("magnitude", 40))
        ask(r)
        assert sent == [msg.PruneTo("magnitude", 0.1), msg.PruneTo("magnitude", 0.4), command]
    assert r.saving


def test_a_slider_move_interrupts_the_sweep_and_sweeps_the_levels_left_after_it() -> None:
    r, sent = _requests()
    r.sweep("magnitude")
    sweep_id = sent[0].request_id
    for level in SWEEP_LEVELS[:3]:
        assert r.sweep_point(msg.SweepPointMeasured(
            "magnitude", level, level, 2.0 + level, 7.0, 0.1, 0.2, request_id=sweep_id))
    r.prune(("magnitude", 50))
    assert _kinds(sent) == ["Sweep", "Cancel", "PruneTo", "Sweep"]
    assert sent[1].target == sweep_id
    assert sent[3].levels == SWEEP_LEVELS[3:] and sent[3].method == "magnitude"
    assert r.sweep_ids == {sweep_id, sent[3].request_id}
    # The new sweep's points are shown too; the last one ends the sweep.
    assert r.sweep_point(msg.SweepPointMeasured(
        "magnitude", 0.9, 0.9, 5.0, 9.0, 0.0, 0.0, last=True, request_id=sent[3].request_id))
    assert not r.sweeping and r.sweep_points[90.0] == 5.0


def test_a_new_sweep_or_method_cancels_the_old_curve() -> None:
    r, sent = _requests()
    r.sweep("magnitude")
    r.sweep("global")
    assert _kinds(sent) == ["Sweep", "Cancel", "Sweep"] and sent[1].target == sent[0].request_id
    r.forget_sweep()
    assert _kinds(sent)[-1] == "Cancel" and not r.sweeping and r.sweep_points == {}
    old = msg.SweepPointMeasured("magnitude", 0.1, 0.1, 2.0, 7.0, 0, 0, request_id=999)
    assert not r.sweep_point(old) and r.sweep_points == {}


def test_cancel_names_what_it_stops_and_says_so() -> None:
    r, sent = _requests()
    r.sweep("magnitude")
    assert r.cancel() == "sweep cancelled" and not r.sweeping
    r.finetune(10)
    r.sweep("magnitude")
    assert r.cancel() == "stopping the fine-tuning …"
    cancels = [c.target for c in sent if isinstance(c, msg.Cancel)]
    assert cancels == [sent[0].request_id, sent[3].request_id, r.finetune_id]
    assert r.finetuning  # (until the engine answers the stopped fine-tuning)


def test_a_finetuning_reports_its_steps_and_only_its_own() -> None:
    r, sent = _requests()
    r.finetune(3)
    ft = r.finetune_id
    assert not r.finetune_step(msg.FinetuneStep(1, 3, 9.9, request_id=ft + 1000))
    for step, loss in ((1, 2.5), (2, 2.4), (3, 2.2)):
        assert r.finetune_step(msg.FinetuneStep(step, 3, loss, request_id=ft))
    assert r.status_text("", "c").startswith("fine-tuning 3/3 loss 2.200 ")
    assert r.status_text("", "c").endswith(" (c stops)")
    assert r.compressed(ft) == Answer("finetune", 3, True) and not r.finetuning
    assert r.finetuned_note(2.345) == "fine-tuned 3 steps: train loss 2.500 → 2.200; val loss 2.345"
    assert not r.finetune_step(msg.FinetuneStep(4, 3, 2.0, request_id=ft))  # (over)


def test_errors_end_only_the_requests_they_answer() -> None:
    r, sent = _requests()
    r.prune(("magnitude", 10))
    r.prune(("magnitude", 20))
    assert not r.failed(msg.Error("a training failed"), model_request=77)
    assert not r.failed(msg.Error("another pane's", request_id=12345), model_request=77)
    assert r.failed(msg.Error("bad", request_id=sent[0].request_id), model_request=77)
    assert not r.pruning and r.wanted is None  # (the next one would fail the same way)
    r.finetune(5)
    r.save()
    assert r.failed(msg.Error("no", request_id=r.finetune_id), model_request=77)
    assert not r.finetuning and r.saving
    r.sweep("magnitude")
    assert r.failed(msg.Error("no", request_id=sent[-1].request_id), model_request=77)
    assert not r.sweeping and not r.sweep_ids
    # The app's LoadRun failed: nothing is waited for any more.
    assert r.failed(msg.Error("gone", request_id=77), model_request=77)
    assert not r.requests and not r.saving


def test_after_clear_late_answers_are_dropped() -> None:
    r, sent = _requests()
    r.prune(("magnitude", 10))
    r.save()
    r.clear()
    assert r.compressed(sent[0].request_id) is None
    assert not r.saved(msg.CompressedSaved("/x", request_id=sent[1].request_id))


def test_the_status_line_says_what_is_under_way_else_the_note() -> None:
    r, sent = _requests()
    assert r.status_text("applied", "c") == "applied"
    r.prune(("magnitude", 10))
    r.quantize()
    r.save()
    r.sweep("magnitude")
    assert r.status_text("applied", "c") == (
        f"measuring magnitude 10% … · quantizing … · writing … · sweep 0/{len(SWEEP_LEVELS)} …")
    assert r.saved(msg.CompressedSaved("/x", request_id=sent[2].request_id))
    assert "writing" not in r.status_text("", "c")


def test_echoes_of_the_panes_own_edits_are_no_news() -> None:
    e = Echoes(("compress.sparsity",))
    assert e.to_post("compress.sparsity", 0.1, current=0.0)
    assert e.to_post("compress.sparsity", 0.2, current=0.0)
    assert not e.to_post("compress.sparsity", 0.2, current=0.0)  # (posted last already)
    assert e.is_echo("compress.sparsity", 0.1)  # the app shows the first back, then the second
    assert e.is_echo("compress.sparsity", 0.2)
    assert e.is_echo("compress.sparsity", 0.2)  # (the value shown last: another field changed)
    assert not e.is_echo("compress.sparsity", 0.5)  # news: an edit elsewhere, an open
    assert not e.to_post("compress.sparsity", 0.5, current=0.5)  # (the session has it)
    # A field the pane does not show is posted but never waited for.
    assert e.to_post("compress.quantize", "int8", current="none")
    assert not e.is_echo("compress.quantize", "int8")
    assert not e.to_post("compress.finetune_steps", 0, current=0)
    assert e.to_post("compress.finetune_steps", 0, current=0.0)  # (another type)


def test_the_keys_and_the_hint_name_the_users_keys() -> None:
    key = {"prune.less": "←", "prune.more": "→"}.get
    assert keys_text(lambda b: b.split(".")[1]).splitlines() == [
        "less/more sparsity  method method", "apply apply  finetune fine-tune  quantize int8",
        "save write  layers layers  sweep sweep", "cancel cancel sweep / fine-tune"]
    assert no_model_hint("tiny/run-1", "train one", key) == "loading tiny/run-1 …"
    assert no_model_hint(None, "train one (^r)", key) == (
        "No model loaded. Train one (^r).\nThen ←/→ prune a copy of it to any sparsity: the "
        "trained weights stay as they are.")
