"""What the accounts API accepts and returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from server.accounts.models import Organisation, Specialty, User
from server.validation import BodyId


class LoginIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=200)
    # The authenticator's 6-digit code (or a recovery code) when two-factor is on.
    otp: str | None = Field(default=None, max_length=32)


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    organisation_id: int
    specialty_id: int | None
    locale: str
    active: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls.model_validate(user, from_attributes=True)


class MeOut(BaseModel):
    user: UserOut
    csrf_token: str
    # "enrol": this session opens only two-factor enrolment (/api/me/totp) until done.
    pending: str = ""


class TotpStartOut(BaseModel):
    secret: str
    uri: str


class TotpConfirmIn(BaseModel):
    code: str = Field(min_length=6, max_length=8)


class TotpConfirmOut(BaseModel):
    recovery_codes: list[str]


class UserCreateIn(BaseModel):
    email: str = Field(max_length=254)
    name: str = Field(min_length=1, max_length=100)
    role: str
    password: str = Field(max_length=200)
    specialty_id: BodyId | None = None
    locale: str = "ko"


class SpecialtyIn(BaseModel):
    code: str = Field(max_length=40)
    name_ko: str = Field(max_length=100)
    name_en: str = Field(max_length=100)


class LocaleIn(BaseModel):
    locale: str


class OrganisationOut(BaseModel):
    id: int
    name_ko: str
    name_en: str
    kind: str
    region_id: int
    is_hub: bool

    @classmethod
    def of(cls, organisation: Organisation) -> OrganisationOut:
        return cls.model_validate(organisation, from_attributes=True)


class SpecialtyOut(BaseModel):
    id: int
    code: str
    name_ko: str
    name_en: str

    @classmethod
    def of(cls, specialty: Specialty) -> SpecialtyOut:
        return cls.model_validate(specialty, from_attributes=True)


class CsrfOut(BaseModel):
    csrf_token: str


class SessionOut(BaseModel):
    """One open login session: the device, the address it came from, when last used."""

    id: int
    device: str
    ip: str
    created_at: datetime
    last_seen_at: datetime
    current: bool


class PasswordIn(BaseModel):
    current: str = Field(min_length=1, max_length=200)
    new: str = Field(min_length=1, max_length=200)
