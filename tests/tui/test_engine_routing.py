"""How engine events reach the app and the panes: once each, the app first, none after
the screen is gone."""

from __future__ import annotations

from pathlib import Path


def test_engine_events_reach_subscribers_once_without_bubbling_twice() -> None:
    """The bridge posts every event to its target (bubbling to the app) and a copy, which
    does not bubble, to each widget subscribed to its kind."""
    from core import messages as msg
    from core.values import ModelFigures
    from tui.engine_client import EngineClient
    from tui.messages import EngineEvent

    class Pump:
        def __init__(self) -> None:
            self.got: list = []

        def post_message(self, message) -> bool:
            self.got.append(message)
            return True

    target, pane, other = Pump(), Pump(), Pump()
    client = EngineClient(target)  # type: ignore[arg-type]
    client.subscribe(pane, msg.ModelLoaded, msg.Status)  # type: ignore[arg-type]
    client.subscribe(other, msg.Compressed)  # type: ignore[arg-type]
    figures = ModelFigures("dense", 10, 10, 0.0, 40, 1.0, 2.7, 0.5, 0.9, 1.0)
    client.deliver(msg.ModelLoaded("runs/a/1", "gpt", 60, 17, 32, figures))
    client.deliver(msg.Status("idle"))
    assert [type(m) for m in target.got + pane.got] == [EngineEvent] * 4
    assert [type(m.event) for m in target.got] == [msg.ModelLoaded, msg.Status]
    assert [type(m.event) for m in pane.got] == [msg.ModelLoaded, msg.Status]
    assert other.got == []
    assert all(m._stop_propagation for m in pane.got)  # the app already has its own copy
    assert not any(m._stop_propagation for m in target.got)
    assert pane.got[0].event is target.got[0].event



def test_engine_events_after_the_screen_is_gone_are_ignored(tmp_path: Path) -> None:
    """An event can still reach the app while it shuts down (its screen gone): no error,
    and no engine started to load the run that just stopped."""
    from helpers.tui import small_session

    from core import messages as msg
    from tui.app import LlmlabApp
    from tui.messages import EngineEvent

    app = LlmlabApp(small_session(tmp_path), None)
    app.on_engine_event(EngineEvent(msg.Status("stopped")))
    app.on_engine_event(EngineEvent(msg.RunStarted("r", "gpt", 1, 1, 1, 10, 0, "cpu", "fp32")))
    app.on_engine_event(EngineEvent(msg.StepMetrics(1, 8, 1.0, 1e-3, 1.0, 1.0, 0.0, 0.1)))
    assert app.model_loading is None



def test_the_app_sees_an_engine_event_before_any_pane() -> None:
    from core import messages as msg
    from core.values import ModelFigures
    from tui.engine_client import EngineClient

    order: list[str] = []

    class Pump:
        def __init__(self, name: str) -> None:
            self.name = name

        def post_message(self, message) -> bool:
            order.append(self.name)
            return True

    client = EngineClient(Pump("target"),  # type: ignore[arg-type]
                          observe=lambda event: order.append(type(event).__name__))
    client.subscribe(Pump("pane"), msg.ModelLoaded)  # type: ignore[arg-type]
    figures = ModelFigures("dense", 10, 10, 0.0, 40, 1.0, 2.7, 0.5, 0.9, 1.0)
    client.deliver(msg.ModelLoaded("runs/a/1", "gpt", 60, 17, 32, figures))
    assert order == ["ModelLoaded", "target", "pane"]
