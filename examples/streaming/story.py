"""The "model" of examples/streaming: the tokens of a reply and when each one comes.

A real language model samples its tokens; this one tells a fixed story about the prompt, so a
test knows every token and the wait before the first one.
"""

from __future__ import annotations

FIRST_TOKEN_WAIT = 0.2  # seconds: the model reads the prompt before its first token
TOKEN_WAIT = 0.01  # seconds between two later tokens


def reply(prompt: str) -> list[str]:
    """The tokens of the reply to ``prompt``: words, each after its space."""
    words = f"Once upon a time, {prompt.strip().rstrip('.')}. The end.".split(" ")
    return [words[0]] + [" " + w for w in words[1:]]
