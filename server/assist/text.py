"""Words of a question, Korean and English: kiwipiepy's analyser, loaded on first use.

The analyser's model ships inside the `kiwipiepy-model` package (installed from the
package index like any dependency); nothing is fetched at run time. Loading it takes
a second or two, so it happens on the first suggestion, never at app start.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

# Content words: common and proper nouns, roots, verb and adjective stems, Chinese
# characters, numbers written as words, and Latin-alphabet words (English).
_KEEP = {"NNG", "NNP", "XR", "VV", "VA", "SH", "SL"}
_PREDICATES = {"VV", "VA"}
_EN_STOP = frozenset(
    """a an and are as at be been but by for from had has have he her his i in is it its
    of on or our she since that the their there this to was were with without who will
    would patient pt yo year years old please advice advise about any can could
    should we you your my me do does did how what which when after before despite
    next step also still now then need needed reasonable appropriate worth both very
    some""".split()
)

# Words of the request's form rather than its content ("자문 부탁드립니다").
_KO_STOP = frozenset(
    """자문 부탁 드리다 문의 의뢰 요청 의견 조언 바라다 있다 없다 하다 되다 같다 환자 방향
    궁금 생각 경우 정도 최근 때 후 전 중 이상 동안 보내다 필요 받다 주다 알다 보다""".split()
)
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:['-][A-Za-z0-9]+)*")

_lock = threading.Lock()


@lru_cache(maxsize=1)
def analyser() -> Kiwi:
    """The Korean analyser (loaded once per process, on first use)."""
    from kiwipiepy import Kiwi

    return Kiwi()


def _english(word: str) -> str:
    word = word.lower()
    # A light plural fold, so "forearms" and "forearm" are one feature.
    if word.endswith(("shes", "ches", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The content words of the text, in order (Korean stems end in 다: 아프다)."""
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    # Latin-alphabet words are split here (the analyser cuts some English words oddly);
    # the rest, Korean, goes to the analyser.
    for match in _LATIN.finditer(text):
        word = _english(match.group(0))
        if word not in _EN_STOP and len(word) > 1:
            out.append(word)
    korean = _LATIN.sub(" ", text)
    if not korean.strip():
        return out
    kiwi = analyser()
    with _lock:  # one analysis at a time per process: the analyser is shared
        tokens = kiwi.tokenize(korean)
    for token in tokens:
        tag = str(token.tag).split("-")[0]  # VV-R / VV-I carry the conjugation class
        if tag not in _KEEP:
            continue
        form = str(token.form)
        if tag in _PREDICATES:
            form = form + "다"
        if form not in _KO_STOP:
            out.append(form)
    return out
