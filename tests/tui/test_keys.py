"""One keyboard scheme (issue 10, item 11): up/down move between fields, +/- change a value
(a number's step, a choice's next), enter confirms, escape leaves, the help scrolls by itself.
Each test is one trap a newcomer fell into, driven by keys at 80x24."""

from __future__ import annotations

from pathlib import Path

from helpers.tui import _focused_field, app_at, jump_to_field, settle, sync, type_text, wait_for

from tui.screens.help import HelpScreen
from tui.screens.hparam_edit import HparamEditScreen


@sync
async def test_down_in_a_text_field_goes_to_the_next_field_and_keeps_the_text(
        tmp_path: Path) -> None:
    """It scrolled the form and left the name selected: the next key replaced it."""
    async with app_at(tmp_path) as (app, pilot):
        await jump_to_field(pilot, "name")
        await pilot.press("down")
        assert _focused_field(app) == "data.corpus"
        await pilot.press("up")
        assert _focused_field(app) == "name"
        await type_text(pilot, "x")
        await wait_for(pilot, lambda: app.session.name == "tinyx", 5, "the name typed on")
        await settle(pilot)


@sync
async def test_escape_then_tab_or_an_arrow_returns_to_the_field_left(tmp_path: Path) -> None:
    """Tab after escape went back to the first field of the form."""
    async with app_at(tmp_path) as (app, pilot):
        await jump_to_field(pilot, "optim.lr")
        await pilot.press("escape")
        assert app.focused is app.model_pane
        await pilot.press("tab")
        assert _focused_field(app) == "optim.lr"
        await pilot.press("escape", "down")
        assert _focused_field(app) == "optim.lr"
        await settle(pilot)


@sync
async def test_arrows_move_between_number_fields_and_plus_minus_change_them(tmp_path: Path) -> None:
    """Down in a number field halved it instead of going to the next field."""
    async with app_at(tmp_path) as (app, pilot):
        await jump_to_field(pilot, "model.n_embd")
        await pilot.press("down")
        assert app.session.model.n_embd == 32  # unchanged
        assert _focused_field(app) == "model.context"  # (n_hidden is not gpt's)
        await pilot.press("minus")
        assert app.session.model.context == 16
        await pilot.press("plus", "plus")
        assert app.session.model.context == 64
        await settle(pilot)


@sync
async def test_a_choice_moves_on_with_the_arrows_and_steps_with_plus_minus(tmp_path: Path) -> None:
    """Textual's Select opens its list on an arrow: the form's 'next field' key was lost."""
    async with app_at(tmp_path) as (app, pilot):
        await jump_to_field(pilot, "model.arch")
        await pilot.press("down")
        assert _focused_field(app) == "model.n_layer"
        assert app.session.model.arch == "gpt"
        await pilot.press("up", "minus")
        assert app.session.model.arch == "gru"
        await pilot.press("plus")
        assert app.session.model.arch == "gpt"
        await settle(pilot)


@sync
async def test_the_help_scrolls_at_once(tmp_path: Path) -> None:
    """At 80x24 the help showed 17 keys and did not scroll until tab."""
    async with app_at(tmp_path) as (app, pilot):
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "the help")
        scroll = app.screen.query_one("#help-keys")
        await pilot.pause()
        assert scroll.max_scroll_y > 0  # (more keys than fit: the case that matters)
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: scroll.scroll_y > 0, 5, "the help to scroll")
        before = scroll.scroll_y
        await pilot.press("down")
        await wait_for(pilot, lambda: scroll.scroll_y > before, 5, "a line down")
        await pilot.press("escape")
        await settle(pilot)


@sync
async def test_the_live_edit_dialog_chooses_the_parameter_before_enter_applies(
        tmp_path: Path) -> None:
    """Enter applied the lr at once: the parameter could not be chosen first."""
    async with app_at(tmp_path) as (app, pilot):
        lr, wd = app.session.optim.lr, app.session.optim.weight_decay
        await pilot.press("t", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, HparamEditScreen), 5,
                       "the edit dialog")
        dialog = app.screen
        await pilot.press("enter")  # opens the list of parameters; applies nothing
        await pilot.pause()
        assert app.screen is dialog and app.session.optim.lr == lr
        await pilot.press("down", "enter")  # lr -> weight_decay, taken from the list
        await wait_for(pilot, lambda: dialog.field == "optim.weight_decay", 5,
                       "weight decay chosen")
        assert app.focused is dialog.query_one("#hparam-value")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "0.05")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session.optim.weight_decay == 0.05, 5, "the wd")
        assert app.session.optim.lr == lr and wd != 0.05
        await settle(pilot)


@sync
async def test_the_dataset_pane_keeps_the_same_scheme(tmp_path: Path) -> None:
    """The corpus choice opened its list on an arrow; +/- did nothing there."""
    from core.samples import SAMPLE_PREFIX, SAMPLES

    async with app_at(tmp_path) as (app, pilot):
        await pilot.press("d", "tab")
        source = app.dataset_pane.query_one("#corpus-source")
        assert app.focused is source
        names = list(SAMPLES)
        following = names[(names.index("synthetic") + 1) % len(names)]
        await pilot.press("plus")
        await wait_for(pilot, lambda: app.session.data.corpus == SAMPLE_PREFIX + following,
                       5, "the next sample")
        await pilot.press("down")
        assert app.focused is app.dataset_pane.query_one("#corpus-path")
        await pilot.press("down")
        assert _focused_field(app) == "data.tokenizer"
        await pilot.press("escape")
        assert app.focused is app.dataset_pane
        await pilot.press("down")  # on the pane an arrow enters no field
        assert app.focused is app.dataset_pane
        await settle(pilot)
