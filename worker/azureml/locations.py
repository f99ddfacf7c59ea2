"""Blob addresses as the Azure ML protocol spells them: references sent, locations received."""

from __future__ import annotations

from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    SerializationInfo,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_pascal

_REVEAL = "reveal_secrets"


class ProtocolModel(BaseModel):
    """Base of models spelled with the protocol's PascalCase names, tolerant of extra fields."""

    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )

    def to_payload(self) -> dict[str, Any]:
        """The JSON body for the wire: protocol names, ``None`` members left out, secrets shown."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, context={_REVEAL: True}
        )


def reveal(secret: SecretStr | None, info: SerializationInfo) -> str | None:
    """A secret's value when serializing for the wire, else its mask."""
    if secret is None:
        return None
    context = info.context
    if isinstance(context, dict) and context.get(_REVEAL):
        return secret.get_secret_value()
    return str(secret)


def _sas_query(token: str) -> str:
    return token if not token or token.startswith("?") else f"?{token}"


class BlobReference(ProtocolModel):
    """A blob handed to BES: ``ConnectionString`` or ``BaseLocation`` + ``SasBlobToken``."""

    connection_string: SecretStr | None = None
    base_location: str | None = None
    sas_blob_token: SecretStr | None = None
    relative_location: str

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        by_sas = self.base_location is not None and self.sas_blob_token is not None
        if (self.connection_string is not None) == by_sas:
            raise ValueError("give either ConnectionString or both BaseLocation and SasBlobToken")
        return self

    @field_serializer("connection_string", "sas_blob_token")
    def _secret(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        return reveal(value, info)


class BlobLocation(ProtocolModel):
    """A readable blob: ``BaseLocation + RelativeLocation + SasBlobToken`` (BES results)."""

    base_location: str
    relative_location: str
    sas_blob_token: SecretStr | None = None

    @property
    def uri(self) -> str:
        """The blob's address without any SAS (what an ARM asset's ``locationInfo.uri`` holds)."""
        return f"{self.base_location.rstrip('/')}/{self.relative_location.lstrip('/')}"

    @property
    def url(self) -> SecretStr:
        """The blob's address with its SAS appended: enough to read it, hence a secret."""
        token = self.sas_blob_token.get_secret_value() if self.sas_blob_token else ""
        return SecretStr(self.uri + _sas_query(token))

    @field_serializer("sas_blob_token")
    def _secret(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        return reveal(value, info)
