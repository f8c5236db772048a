"""The pure protocol module: parsing, validation and role assignment."""

from __future__ import annotations

import json

import pytest

from signaling import protocol as p
from signaling import tokens


def test_join_parses_with_defaults() -> None:
    frame = p.parse_client('{"type":"join","room":"abc"}')
    assert isinstance(frame, p.Join)
    assert frame.can_rollback is True and frame.v == 1


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_frame"),
        ("[1,2]", "bad_frame"),
        ('{"type":"teleport"}', "bad_frame"),
        ('{"type":"join"}', "bad_frame"),
        ('{"type":"join","room":"a","v":2}', "unsupported_version"),
        ('{"type":"offer","to":"p1","sdp":""}', "bad_frame"),
        ('{"type":"chat","text":"' + "x" * 2001 + '"}', "bad_frame"),
        ('{"type":"ping","extra":1}', "bad_frame"),
        ('{"type":"stats","bitrate_kbps":-1,"rtt_ms":1,"loss_pct":0}', "bad_frame"),
    ],
)
def test_bad_frames_are_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(p.ProtocolError) as error:
        p.parse_client(text)
    assert error.value.code == code


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(p.ProtocolError) as error:
        p.parse_client('{"type":"chat","text":"' + "x" * (70 * 1024) + '"}')
    assert error.value.code == "frame_too_large"


def test_server_frames_round_trip_with_from_alias() -> None:
    frame = p.RelayedCandidate(
        from_="p_1", candidate=p.IceCandidate(candidate="candidate:1 1 udp 1 1.2.3.4 5 typ host")
    )
    data = json.loads(frame.dump())
    assert data["from"] == "p_1" and data["type"] == "candidate" and data["v"] == 1
    back = p.parse_server(frame.dump())
    assert isinstance(back, p.RelayedCandidate) and back.from_ == "p_1"


@pytest.mark.parametrize("a_rollback", [True, False])
@pytest.mark.parametrize("b_rollback", [True, False])
def test_exactly_one_side_of_a_pair_is_polite_and_offers_agree(
    a_rollback: bool, b_rollback: bool
) -> None:
    first = p.pair_roles(me_first=True, me_can_rollback=a_rollback, other_can_rollback=b_rollback)
    second = p.pair_roles(me_first=False, me_can_rollback=b_rollback, other_can_rollback=a_rollback)
    assert first[0] != second[0]  # never both polite, never both impolite
    mirror = {"any": "any", "you": "peer", "peer": "you"}
    assert mirror[first[1]] == second[1]
    # A side that cannot roll back never meets a glare: only one side of the pair
    # offers, and it is impolite when the other side could roll back.
    for (polite, offer), can_rollback in ((first, a_rollback), (second, b_rollback)):
        if not can_rollback:
            assert offer != "any"
            if a_rollback or b_rollback:
                assert polite is False


def test_join_token_round_trip_expiry_and_tampering() -> None:
    token = tokens.sign_join("s3cret", {"r": "room", "u": 1}, 60, now=1000)
    assert tokens.verify_join("s3cret", token, now=1030) is not None
    assert tokens.verify_join("s3cret", token, now=1061) is None
    assert tokens.verify_join("other", token, now=1030) is None
    version, payload, signature = token.split(".")
    assert tokens.verify_join("s3cret", f"{version}.{payload}x.{signature}", now=1030) is None
    assert tokens.verify_join("s3cret", "garbage", now=1030) is None


def test_turn_credentials_follow_the_coturn_rest_api() -> None:
    import base64
    import hashlib
    import hmac

    username, password = tokens.turn_credentials("turnsecret", "user:7", 3600, now=1_000_000)
    assert username == "1003600:user:7"
    expected = base64.b64encode(
        hmac.new(b"turnsecret", username.encode(), hashlib.sha1).digest()
    ).decode()
    assert password == expected
