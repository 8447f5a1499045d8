"""Just enough CloudFormation intrinsic-function resolution for what moto leaves undone.

moto resolves intrinsics for the resources it creates; the post-deploy step (Glue, Athena, bucket
notifications) and the routers need the same values for resources moto skips.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")

AttributeLookup = Callable[[str, str], str]


class UnresolvableError(ValueError):
    """An intrinsic function this resolver does not support, or a reference it cannot resolve."""


def arn_of(resource_type: str, physical_id: str, region: str, account: str) -> str:
    """The ARN CloudFormation's ``Fn::GetAtt X.Arn`` gives for a physical id of ``resource_type``."""
    kinds = {
        "AWS::S3::Bucket": f"arn:aws:s3:::{physical_id}",
        "AWS::Kinesis::Stream": f"arn:aws:kinesis:{region}:{account}:stream/{physical_id}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{physical_id}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{physical_id}",
        "AWS::Events::Rule": f"arn:aws:events:{region}:{account}:rule/{physical_id}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{region}:{account}:log-group:{physical_id}:*",
        "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{physical_id.rstrip('/').rsplit('/', 1)[-1]}",
        "AWS::IAM::Role": f"arn:aws:iam::{account}:role/{physical_id}",
        "AWS::StepFunctions::StateMachine": physical_id,
    }
    if resource_type not in kinds:
        raise UnresolvableError(f"no ARN rule for {resource_type}")
    return kinds[resource_type]


def attribute_of(resource_type: str, physical_id: str, attr: str, region: str, account: str) -> str:
    """``Fn::GetAtt`` for the attributes sluice templates use (Arn, Name, QueueName, QueueUrl)."""
    if attr == "Arn":
        return arn_of(resource_type, physical_id, region, account)
    if attr == "QueueName":
        return physical_id.rstrip("/").rsplit("/", 1)[-1]
    if attr == "QueueUrl":
        return physical_id
    if attr == "Name":
        return physical_id.rsplit(":", 1)[-1]
    raise UnresolvableError(f"no rule for Fn::GetAtt {resource_type}.{attr}")


def resolve(value: Any, refs: Mapping[str, str], getatt: AttributeLookup) -> Any:
    """Resolve ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::Join`` and ``Fn::Select`` in ``value``.

    Raises
    ------
    UnresolvableError
        Another intrinsic, or a name that is neither a parameter, a pseudo parameter nor a resource.

    """
    if isinstance(value, list):
        return [resolve(item, refs, getatt) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" or key.startswith("Fn::") or key == "Condition":
            return _intrinsic(key, arg, refs, getatt)
    return {k: resolve(v, refs, getatt) for k, v in value.items()}


def _intrinsic(key: str, arg: Any, refs: Mapping[str, str], getatt: AttributeLookup) -> Any:
    if key == "Ref":
        return _ref(str(arg), refs)
    if key == "Fn::GetAtt":
        name, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return getatt(str(name), str(resolve(attr, refs, getatt)))
    if key == "Fn::Sub":
        return _sub(arg, refs, getatt)
    if key == "Fn::Join":
        sep, items = arg
        return str(sep).join(str(x) for x in resolve(items, refs, getatt))
    if key == "Fn::Select":
        index, items = resolve(arg, refs, getatt)
        return items[int(index)]
    raise UnresolvableError(f"{key} is not supported here")


def _ref(name: str, refs: Mapping[str, str]) -> str:
    if name not in refs:
        raise UnresolvableError(f"Ref {name}: unknown or not created")
    return refs[name]


def _sub(arg: Any, refs: Mapping[str, str], getatt: AttributeLookup) -> str:
    if isinstance(arg, list):
        template, variables = str(arg[0]), {k: str(resolve(v, refs, getatt)) for k, v in arg[1].items()}
    else:
        template, variables = str(arg), {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            resource, attr = name.split(".", 1)
            return getatt(resource, attr)
        return _ref(name, refs)

    return _SUB_VAR.sub(replace, template)


_NO_VALUE = {"Ref": "AWS::NoValue"}


def evaluate_conditions(
    conditions: Mapping[str, Any], refs: Mapping[str, str], getatt: AttributeLookup
) -> dict[str, bool]:
    """The template's ``Conditions`` as booleans (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
    done: dict[str, bool] = {}

    def value(expr: Any, seen: tuple[str, ...]) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return named(str(arg), seen)
            if key == "Fn::Equals":
                left, right = (resolve(a, refs, getatt) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not value(arg[0], seen)
            if key == "Fn::And":
                return all(value(a, seen) for a in arg)
            if key == "Fn::Or":
                return any(value(a, seen) for a in arg)
        raise UnresolvableError(f"condition {expr!r} is not supported here")

    def named(name: str, seen: tuple[str, ...]) -> bool:
        if name not in done:
            if name not in conditions or name in seen:
                raise UnresolvableError(f"Condition {name}: unknown or circular")
            done[name] = value(conditions[name], (*seen, name))
        return done[name]

    for name in conditions:
        named(name, ())
    return done


def apply_conditions(value: Any, conditions: Mapping[str, bool]) -> Any:
    """`value` with every ``Fn::If`` replaced by its branch and ``Ref: AWS::NoValue`` dropped."""
    if isinstance(value, list):
        items = [apply_conditions(item, conditions) for item in value]
        return [item for item in items if item != _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "Fn::If" in value:
        name, if_true, if_false = value["Fn::If"]
        if name not in conditions:
            raise UnresolvableError(f"Fn::If: unknown condition {name}")
        return apply_conditions(if_true if conditions[name] else if_false, conditions)
    out = {k: apply_conditions(v, conditions) for k, v in value.items()}
    return {k: v for k, v in out.items() if v != _NO_VALUE}
