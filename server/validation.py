"""Types that keep hostile input at the edge: ids, datetimes and dates a database can hold.

Every integer column is a 32-bit INTEGER on PostgreSQL: an id of 2^31 or more would
overflow inside the query (a 500), so routes take ids as these types and FastAPI
answers 422 naming the field. Datetimes near year 1 or 9999 overflow as soon as a
duration is added (a slot search's end, a time zone shift), so they are kept within
a range that no consult, roster or audit filter needs to leave.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, Field

MAX_ID = 2**31 - 1
EARLIEST_YEAR = 1900
LATEST_YEAR = 2200


def _datetime_in_range(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    if value.tzinfo is not None:
        # A far offset could still carry the value over a year boundary.
        value.astimezone(UTC)
    return value


def _date_in_range(value: date) -> date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


# A database id in a path (/users/{user_id}), a query string or a JSON body.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int, Query(ge=1, le=MAX_ID)]
OptionalQueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
# A sequence number or an offset: 0 allowed.
QueryCount = Annotated[int | None, Query(ge=0, le=MAX_ID)]

# A datetime (naive or aware) and an aware one, within [EARLIEST_YEAR, LATEST_YEAR].
EdgeDateTime = Annotated[datetime, AfterValidator(_datetime_in_range)]
EdgeAwareDateTime = Annotated[AwareDatetime, AfterValidator(_datetime_in_range)]
EdgeDate = Annotated[date, AfterValidator(_date_in_range)]
