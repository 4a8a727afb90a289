"""``maps/store.py`` alone: answers survive a new store on the same file, each server sees
only its own answers, the key is the request body's and nothing else's, and a submitted
batch is picked up until merged."""

from __future__ import annotations

from pathlib import Path

from deepinfra_magic.maps.store import AnswerStore, answer_key
from deepinfra_magic.types import Usage

SERVER = "https://api.deepinfra.com"


def test_an_answer_is_on_disk_as_soon_as_it_is_put(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    first = AnswerStore(path, server=SERVER)
    first.put("k1", "m", "hello", Usage(1, 2, 3, 0.5))
    first.put("k2", "m", "bye", None)
    second = AnswerStore(path, server=SERVER)  # as after a kernel restart
    assert second.get_many(["k1", "k2", "k3"]) == {
        "k1": ("hello", Usage(1, 2, 3, 0.5)),
        "k2": ("bye", None),
    }
    first.close()
    second.close()


def test_each_server_sees_only_its_own_answers_in_a_shared_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    deepinfra = AnswerStore(path, server=SERVER)
    local = AnswerStore(path, server="http://127.0.0.1:8080/v1")
    deepinfra.put("k1", "m", "from DeepInfra", None)
    assert local.get_many(["k1"]) == {}
    local.put("k1", "m", "from the local server", None)
    assert deepinfra.get_many(["k1"]) == {"k1": ("from DeepInfra", None)}
    assert local.get_many(["k1"]) == {"k1": ("from the local server", None)}
    deepinfra.close()
    local.close()


def test_the_key_is_the_body_in_any_key_order_and_only_the_body() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert answer_key(body) == answer_key(dict(reversed(list(body.items()))))
    assert answer_key(body) != answer_key({**body, "max_tokens": 6})
    assert len(answer_key(body)) == 32


def test_a_batch_is_picked_up_until_it_is_merged_or_has_failed(tmp_path: Path) -> None:
    store = AnswerStore(tmp_path / "answers.sqlite", server=SERVER)
    store.add_batch("b1", "m", ["k1", "k2"], "in_progress")
    assert store.pending_batch_for(["k2", "k9"]) == "b1"
    assert store.pending_batch_for(["k9"]) is None
    store.set_batch_status("b1", "completed", merged=True)
    assert store.pending_batch_for(["k1"]) is None
    store.add_batch("b2", "m", ["k1"], "expired")
    assert store.pending_batch_for(["k1"]) is None
    assert {job["id"] for job in store.batches()} == {"b1", "b2"}
    store.close()
