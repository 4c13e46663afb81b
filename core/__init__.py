"""llmlab's headless engine.

`import core` is cheap and never imports a UI library (textual, plotext, the `tui` package) or
torch; each part is imported from its own module when needed: `core.session`, `core.corpus`,
`core.tokenizers`, `core.dataset`, `core.stats`, `core.models`.
"""

from core.errors import CorpusError, LlmlabError, SessionError, TokenizerError
from core.session import Session, load_session, save_session, validate

__all__ = [
    "CorpusError", "LlmlabError", "Session", "SessionError", "TokenizerError",
    "load_session", "save_session", "validate",
]
