"""The local cloud's CloudFormation conditions: what it applies itself for resources moto skips (alarms, Glue)."""

import pytest

from localcloud.intrinsics import UnresolvableError, apply_conditions, evaluate_conditions


def _getatt(name: str, attr: str) -> str:
    return f"{name}.{attr}"


def test_conditions_evaluate_with_parameters() -> None:
    conditions = {
        "HasTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Topic"}, ""]}]},
        "Prod": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "Page": {"Fn::And": [{"Condition": "HasTopic"}, {"Condition": "Prod"}]},
        "Either": {"Fn::Or": [{"Condition": "HasTopic"}, {"Condition": "Prod"}]},
    }
    refs = {"Topic": "", "Stage": "prod"}
    assert evaluate_conditions(conditions, refs, _getatt) == {
        "HasTopic": False,
        "Prod": True,
        "Page": False,
        "Either": True,
    }
    with pytest.raises(UnresolvableError):
        evaluate_conditions({"Loop": {"Condition": "Loop"}}, refs, _getatt)


def test_fn_if_picks_a_branch_and_no_value_disappears() -> None:
    no_value = {"Ref": "AWS::NoValue"}
    props = {
        "AlarmActions": {"Fn::If": ["HasTopic", [{"Ref": "Topic"}], no_value]},
        "OKActions": [{"Fn::If": ["HasTopic", {"Ref": "Topic"}, no_value]}, "arn:x"],
        "Threshold": {"Fn::If": ["Prod", 1, 5]},
    }
    assert apply_conditions(props, {"HasTopic": False, "Prod": True}) == {"OKActions": ["arn:x"], "Threshold": 1}
    assert apply_conditions(props, {"HasTopic": True, "Prod": False})["AlarmActions"] == [{"Ref": "Topic"}]
    with pytest.raises(UnresolvableError):
        apply_conditions({"Fn::If": ["Unknown", 1, 2]}, {})
