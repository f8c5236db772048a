"""Passwords, session tokens and CSRF tokens: the cryptographic pieces of login."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from web.render import N_

# argon2id with the library's current defaults (RFC 9106 low-memory profile).
_hasher = PasswordHasher()

# A hash of a random password, verified against when the email is unknown so that
# a wrong email and a wrong password take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

# Counted in characters, whatever the script: a Hangul syllable is one character.
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
# zxcvbn's estimate, 0 (guessed at once) to 4 (beyond 10^10 guesses): its dictionaries
# hold the common passwords, names, words and keyboard patterns; 4 is what an offline
# attack on a stolen argon2 hash should face.
MIN_PASSWORD_SCORE = 4


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# The reasons, as English message ids: pages show them in the reader's language.
PASSWORD_TOO_SHORT = N_("The password must be at least 10 characters long.")
PASSWORD_TOO_LONG = N_("The password must be at most 200 characters long.")
PASSWORD_NO_LETTER = N_("The password must contain a letter (in any script).")
PASSWORD_TOO_GUESSABLE = N_(
    "The password is too easy to guess (a common password, a word or a pattern). "
    "Use a longer passphrase."
)
PASSWORD_MENTIONS_YOU = N_("The password must not contain your email address or name.")


def password_problem(password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why a password is too weak (one of the messages above), or None when acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return PASSWORD_TOO_SHORT
    if len(password) > MAX_PASSWORD_LENGTH:
        return PASSWORD_TOO_LONG
    if not any(character.isalpha() for character in password):
        return PASSWORD_NO_LETTER
    lowered = password.casefold()
    words = [part for value in user_inputs for part in value.casefold().replace("@", " ").split()]
    if any(len(word) >= 4 and word in lowered for word in words):
        return PASSWORD_MENTIONS_YOU
    if zxcvbn(password, user_inputs=list(user_inputs))["score"] < MIN_PASSWORD_SCORE:
        return PASSWORD_TOO_GUESSABLE
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Sessions are stored by hash: a leaked database does not leak live cookies."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret_key: str, binding: str) -> str:
    """A token bound to one session (or one anonymous visitor): HMAC, nothing stored."""
    return hmac.new(secret_key.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret_key: str, binding: str, presented: str | None) -> bool:
    if not presented or not binding:
        return False
    return hmac.compare_digest(csrf_token(secret_key, binding), presented)
