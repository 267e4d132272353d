"""A payload schema valid by the meta-schema but impossible to compile is a configuration error, not a crash."""

from __future__ import annotations

import pytest

from neotool_common.errors import ConfigurationError
from neotool_common.records.validation import EnvelopeReader

# Every record must have "iban", and no member but "seq" is allowed: no document can ever pass.
CONTRADICTORY = {
    "type": "object",
    "required": ["seq", "iban"],
    "properties": {"seq": {"type": "integer"}},
    "additionalProperties": False,
}


def test_a_self_contradictory_payload_schema_is_a_configuration_error_naming_payload_schema() -> None:
    with pytest.raises(ConfigurationError) as raised:
        EnvelopeReader(CONTRADICTORY)

    assert raised.value.setting == "payload_schema"
    assert "cannot be compiled" in str(raised.value)
    assert "iban" in str(raised.value)
