"""The app's end of the engine's workbench: load a model, pass the panes' commands on.

A mixin of `tui.app.LlmlabApp` (`self` is the app): the Prune, Generate and Runs panes ask for
a model or send a command with a message (`LoadModelRequest`, `EngineRequest`); the app keeps
the record of which model is loaded (or loading) that the panes read, and a fresh engine gets
the model the old one had.
"""

from __future__ import annotations

from pathlib import Path

from core import messages as msg
from core.errors import LlmlabError
from tui.messages import EngineRequest, LoadModelRequest
from tui.screens.path_picker import PathPickerScreen


class WorkbenchActions:
    """Load models and send workbench commands (a mixin of the app)."""

    def load_model(self, path: str | None, quiet: bool = False) -> None:
        """Load a run (or a compressed model) into the engine's workbench; `path` None: the
        newest run of this session, if it has one (`quiet`: say nothing if it has none)."""
        if path is None:
            path = self._newest_run()
            if path is None:
                if not quiet:
                    self.notify(f"no run of this session yet: train one "
                                f"({self._key('train.start')}) or pick one in Runs "
                                f"({self._key('app.runs')})", severity="warning")
                return
        if path == self.model_loading:
            return
        try:
            self.client.ensure(self.session)
            self._engine_synced()
            load = msg.LoadRun(str(path))
            self.client.send(load)
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self.model_loading = str(path)
        self.model_request = load.request_id
        self.notify(f"loading {path} …", timeout=3)

    def _newest_run(self) -> str | None:
        from core.runs import newest_run

        path = newest_run(self.session.resolve(self.session.train.runs_dir), self.session.name)
        return str(path) if path else None

    def action_pick_model(self) -> None:
        """Ask for a run folder or a compressed-model folder, and load it."""
        from core.runs import is_compressed_model, is_run_dir

        def accept(path: Path) -> str | None:
            if is_run_dir(path) or is_compressed_model(path):
                return None
            return f"{path}: not a run folder nor a compressed model (no run.json, no " \
                   "compressed.json)"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.load_model(str(path))

        start = self.session.resolve(self.session.train.runs_dir)
        self.push_screen(PathPickerScreen("Load a run or a compressed model",
                                          start if start.is_dir() else Path.cwd(), pick="any",
                                          accept=accept), chosen)

    def _engine_synced(self) -> None:
        """The app's reactive record of the engine bridge, as it is now (panes read it)."""
        self.engine_state = self.training.state
        self.busy = self.training.busy
        self.engine_id = self.client.spawned

    def _engine_replaced(self) -> None:
        """A fresh engine has no model: load the one the old engine had (or was loading)."""
        self._engine_synced()
        source = self.model_source or self.model_loading
        self.model_source = self.model_loading = None
        if source is not None:
            self.load_model(source, quiet=True)

    def on_load_model_request(self, message: LoadModelRequest) -> None:
        self.load_model(message.path)

    def on_engine_request(self, message: EngineRequest) -> None:
        """A pane's command for the engine's workbench."""
        try:
            if self.client.ensure(self.session):
                self._engine_replaced()
            self.client.send(message.command)
        except LlmlabError as e:
            self.notify(str(e), severity="error")

    def _engine_event_seen(self, event: msg.Event) -> None:
        """The app's record of the loaded model, kept before any pane hears of an event."""
        self._engine_synced()
        if isinstance(event, msg.ModelLoaded):
            self.model_source = event.source
            if self.model_loading == event.source:
                self.model_loading = None
        elif isinstance(event, msg.Error) and event.request_id == self.model_request:
            self.model_loading = None

    def _engine_failed(self, event: msg.Error) -> None:
        text = event.message
        trace = event.details.get("traceback")
        if trace:  # a bug rather than a user error: keep the details for a report
            from tui.engine_client import engine_log_path

            path = engine_log_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as log:
                    log.write(f"\n{text}\n{trace}\n")
                text += f" (details in {path})"
            except OSError:
                pass
        self.notify(text, title="engine error", severity="error", timeout=12)
