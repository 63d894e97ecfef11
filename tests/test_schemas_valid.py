"""Every Cerberus schema rulebook ships is checked against Cerberus' meta-schema here.

At run time engine/validators.py skips that check (it cost every run about 70 ms), so this
test is what stops a broken schema from landing.
"""
import pytest
from cerberus import SchemaError, Validator

from engine.config.schema import COMPOSED, GROUP_SCHEMAS, _RulebookValidator
from engine.rules.schema import SCHEMAS as RULE_SCHEMAS
from engine.validators import validator

CONFIG_SCHEMAS = {"composed": COMPOSED, **{f"group:{g}": s for g, s in GROUP_SCHEMAS.items()}}


@pytest.mark.parametrize("name", sorted(CONFIG_SCHEMAS))
def test_config_schema_is_valid_cerberus(name):
    _RulebookValidator(CONFIG_SCHEMAS[name], allow_unknown=False)  # raises SchemaError if broken


@pytest.mark.parametrize("kind", sorted(RULE_SCHEMAS))
def test_rule_schema_is_valid_cerberus(kind):
    Validator(RULE_SCHEMAS[kind], allow_unknown=False)


def test_the_check_this_file_relies_on_catches_a_broken_schema():
    with pytest.raises(SchemaError):
        _RulebookValidator({"x": {"type": "no_such_type"}})
    with pytest.raises(SchemaError):
        _RulebookValidator({"x": {"gt": "zero"}})  # our own rule's argument schema is enforced too


def test_run_time_validator_still_rejects_unknown_and_mistyped_keys():
    v = validator("test:probe", {"n": {"type": "integer", "min": 1}}, _RulebookValidator)
    assert v.validate({"n": 2})
    assert not v.validate({"n": True})  # a bool is not an integer here
    assert not v.validate({"n": 0})
    assert not v.validate({"m": 1})
    assert set(v.errors) == {"m"}


def test_run_time_validator_is_built_once_per_thread():
    import threading

    a = validator("test:once", {"n": {"type": "integer"}})
    assert validator("test:once", {"n": {"type": "integer"}}) is a
    other = []
    t = threading.Thread(target=lambda: other.append(validator("test:once", {"n": {"type": "integer"}})))
    t.start()
    t.join()
    assert other[0] is not a
