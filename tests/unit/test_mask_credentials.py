"""``mask_credentials``: what the magics send a model from the notebook keeps no credential,
and code that merely handles one still reads as written."""

from __future__ import annotations

import pytest

from deepinfra_magic._text import mask_credentials

KEY = "Zx81kd9s0a7d6f5gQw"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            f"GET https://api.x/v1?api_key={KEY}&page=2 failed",
            "GET https://api.x/v1?api_key=***&page=2 failed",
        ),
        (f"{{'Authorization': 'Basic {KEY}', 'x': 1}}", "{'Authorization': '***', 'x': 1}"),
        (f'curl -H "Authorization: Bearer {KEY}"', 'curl -H "Authorization: ***"'),
        (f'config = {{"token": "{KEY}"}}', 'config = {"token": "***"}'),
        (f"DEEPINFRA_API_KEY={KEY}", "DEEPINFRA_API_KEY=***"),
        ("seat jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "seat jwt:*** end"),
        ("sk-live-abcdef123456 here", "*** here"),
    ],
)
def test_credentials_become_stars(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


def test_the_clients_own_key_is_masked_whatever_its_shape() -> None:
    assert mask_credentials("printed plainly: opaque-canary-771", "opaque-canary-771") == (
        "printed plainly: ***"
    )


@pytest.mark.parametrize(
    "code",
    [
        'headers = {"Authorization": f"Bearer {api_key}"}',
        "token = tokenizer.encode(text)",
        "max_tokens: 4096, temperature: 0.7",
        "key = os.environ['DEEPINFRA_API_KEY']",
    ],
)
def test_code_that_handles_a_key_reads_as_written(code: str) -> None:
    assert mask_credentials(code) == code
