"""A one-line text prompt at the bottom of the screen (the filter, the output flags)."""

from __future__ import annotations

from typing import Literal

from sampler.tui.keys import key_name

MAX_LENGTH = 400

Outcome = Literal["apply", "cancel"] | None


class Prompt:
    """Typed text: Enter applies, Esc cancels, Backspace deletes the last character, Ctrl-U
    clears. `purpose` tells the app what to do with the text once applied."""

    def __init__(self, purpose: str, label: str, text: str = "") -> None:
        self.purpose = purpose
        self.label = label
        self.text = text

    def feed(self, key: int | str) -> Outcome:
        name = key_name(key)
        if name == "enter":
            return "apply"
        if name == "esc":
            return "cancel"
        if name == "backspace":
            self.text = self.text[:-1]
        elif name == "ctrl-u":
            self.text = ""
        elif isinstance(key, str) and len(key) == 1 and key.isprintable() and len(self.text) < MAX_LENGTH:
            self.text += key
        return None
