"""Review attacks 11: the performance changes of perf2/perf3 (Yahoo's C parser, the cycle
collector paused during a cycle, parse_inventory's and plan's fast paths).

What held is kept as a few guards; what broke has a test that failed before its fix. (A third
finding, garbage piling up in a long `run` under `gc.freeze`, is guarded in tests/test_scale.py;
the freeze is gone.)
"""

from __future__ import annotations

import gc
from contextlib import ExitStack

import httpx
import pytest

from bot import sync
from bot.channels.yahoo import _xml


# -- Yahoo's answers: the C parser after refusing a DTD ----------------------------------------
def _answer(content: bytes) -> httpx.Response:
    return httpx.Response(200, content=content)


@pytest.mark.parametrize(
    "content",
    [
        # "<!DOCTYPE" as text: in a CDATA section or a comment it declares nothing.
        b"<ResultSet><Result><Message><![CDATA[<!DOCTYPE html>]]></Message></Result></ResultSet>",
        b"<ResultSet><!-- <!DOCTYPE x> --><Result><Code>ok</Code></Result></ResultSet>",
    ],
)
def test_an_answer_that_only_mentions_a_doctype_is_read(content: bytes) -> None:
    """defusedxml's forbid_dtd read these; the text check refused them as unreadable XML."""
    root = _xml(_answer(content))
    assert root is not None and root.tag == "ResultSet"


@pytest.mark.parametrize(
    "content",
    [
        b'\xef\xbb\xbf<!DOCTYPE R [<!ENTITY a "b">]><R>&a;</R>',  # behind a BOM
        b'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE R [<!ENTITY a "b">]><R>&a;</R>',
        b'<!-- <R><![CDATA[ --><!DOCTYPE R [<!ENTITY a "b">]><R>&a;</R>',  # after a comment
        b'<!DOCTYPE R SYSTEM "file:///etc/passwd"><R>x</R>',
        b'<!doctype R [<!ENTITY a "b">]><R>&a;</R>',  # not XML: a parse error
    ],
)
def test_a_declared_dtd_is_still_refused(content: bytes) -> None:
    assert _xml(_answer(content)) is None


def test_japanese_text_behind_a_bom_and_namespaces_read_as_utf8() -> None:
    content = (
        '\ufeff<?xml version="1.0" encoding="UTF-8"?>'
        '<Error xmlns="urn:yahoo:api"><Message>在庫数が不正です</Message><Code>x</Code></Error>'
    ).encode()
    root = _xml(_answer(content))
    assert root is not None and root.tag == "Error"
    assert root.findtext("Message") == "在庫数が不正です"


# -- the cycle collector -------------------------------------------------------------------------
def test_two_cycles_overlapping_in_one_process_leave_the_collector_as_it_was() -> None:
    """Two Cycles in threads of one process: A pushes, B starts and pushes, A ends, B ends.

    Each pause saved and restored the process's collector settings on its own, so B restored
    the thresholds A had set for its pushes: 10,000/10/10 for good.
    """
    state = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    assert state[0]
    try:
        with ExitStack() as a_run, ExitStack() as b_run:
            a_push, b_push = ExitStack(), ExitStack()
            paused = a_run.enter_context(sync._collector_paused())
            a_push.enter_context(sync._collector_during_pushes(paused))
            paused = b_run.enter_context(sync._collector_paused())
            b_push.enter_context(sync._collector_during_pushes(paused))
            a_push.close()
            a_run.close()
            b_push.close()
        assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == state
    finally:  # as it was, for the tests after this one whatever happened
        gc.set_threshold(*state[1])
        gc.enable()
        gc.unfreeze()
