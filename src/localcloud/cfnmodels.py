"""CloudFormation resource types moto's CloudFormation lacks, that sluice's template needs.

``AWS::CloudWatch::Alarm``: the template's alarms exist locally (``describe_alarms``), evaluated by
nothing but listed with their metrics and thresholds; the dashboard ``Fn::Sub``s their ARNs, and
moto fails a ``Fn::GetAtt`` of a resource it skipped. Alarm actions are dropped (no topic locally).

``AWS::Lambda::Alias``: every function of the template is invoked through its ``live`` alias
(``AutoPublishAlias``), so the event source mappings, the schedule's target and permission and the
state machine's substitutions ``Ref`` the alias. moto creates the version but skips the alias, and a
``Ref`` to a skipped resource is None: the mappings would not be created. This model creates the
alias with moto's Lambda API; its ``Ref`` is the alias ARN, as on AWS. Routing, provisioned
concurrency and CodeDeploy's update policy have no local meaning and are ignored (the local
cloud runs every invocation of a function, whatever the qualifier, in its warm workers).

Registered once by the local cloud when it starts (never by the project's functions or layers).
"""

from __future__ import annotations

from typing import Any

from moto.core.common_models import CloudFormationModel


class _Named:
    """A model's resource type ``TYPE`` and its name property ``NAME_PROPERTY``.

    A mixin, not a base class: moto's CloudFormation lists only direct subclasses of its model class.
    """

    TYPE = ""
    NAME_PROPERTY = ""

    @classmethod
    def cloudformation_type(cls) -> str:
        """The resource type."""
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        """The property holding the name."""
        return cls.NAME_PROPERTY


class LambdaAliasModel(_Named, CloudFormationModel):
    """``AWS::Lambda::Alias`` for moto's CloudFormation."""

    TYPE, NAME_PROPERTY = "AWS::Lambda::Alias", "Name"

    def __init__(self, arn: str, name: str, function_name: str) -> None:
        self.arn = arn
        self.name = name
        self.function_name = function_name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaAliasModel:
        """Create the alias on the version the template names (the latest published one if unresolved)."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(account_id, region_name)  # the simple (no Docker) backend, as the local cloud configures
        props = cloudformation_json["Properties"]
        function_name = str(props["FunctionName"]).split(":function:")[-1].split(":")[0]
        version = props.get("FunctionVersion")
        if not isinstance(version, str | int):
            listed = backend.list_versions_by_function(function_name)
            published = [str(v.version) for v in listed if str(v.version).isdigit()]
            version = max(published, key=int) if published else "$LATEST"
        alias = backend.create_alias(
            name=str(props["Name"]),
            function_name=function_name,
            function_version=str(version),
            description=str(props.get("Description", "")),
            routing_config=props.get("RoutingConfig"),
        )
        return cls(alias.arn, alias.name, function_name)

    @property
    def physical_resource_id(self) -> str:
        """``Ref`` of an alias: its ARN."""
        return self.arn

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        """No ``Fn::GetAtt`` attribute is used by the template."""
        return False


class AlarmModel(_Named, CloudFormationModel):
    """``AWS::CloudWatch::Alarm`` (metric and metric-math alarms) for moto's CloudFormation."""

    TYPE, NAME_PROPERTY = "AWS::CloudWatch::Alarm", "AlarmName"

    def __init__(self, name: str, arn: str) -> None:
        self.name = name
        self.arn = arn

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> AlarmModel:
        """Put the alarm with moto's CloudWatch API (named like CloudFormation names it when unnamed)."""
        from moto.cloudwatch.models import cloudwatch_backends

        props = {k: v for k, v in cloudformation_json["Properties"].items() if v is not None}
        name = str(props.get("AlarmName") or resource_name)
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
            namespace=props.get("Namespace"),  # type: ignore[arg-type]
            metric_name=props.get("MetricName"),  # type: ignore[arg-type]
            metric_data_queries=_queries(props.get("Metrics")),
            comparison_operator=str(props["ComparisonOperator"]),
            evaluation_periods=int(props["EvaluationPeriods"]),
            datapoints_to_alarm=int(props["DatapointsToAlarm"]) if "DatapointsToAlarm" in props else None,
            period=int(props["Period"]) if "Period" in props else None,  # type: ignore[arg-type]
            threshold=float(props["Threshold"]) if "Threshold" in props else None,  # type: ignore[arg-type]
            statistic=props.get("Statistic"),  # type: ignore[arg-type]
            extended_statistic=props.get("ExtendedStatistic"),
            description=str(props.get("AlarmDescription", "")),
            dimensions=list(props.get("Dimensions") or []),
            alarm_actions=[],
            unit=props.get("Unit"),
            treat_missing_data=props.get("TreatMissingData"),
        )
        return cls(name, alarm.alarm_arn)

    @property
    def physical_resource_id(self) -> str:
        """``Ref`` of an alarm: its name."""
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        """``Fn::GetAtt Alarm.Arn``."""
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        """The alarm's ARN."""
        if attribute_name == "Arn":
            return self.arn
        raise NotImplementedError(f"Fn::GetAtt {{0}}.{attribute_name} is not supported locally")


def _queries(metrics: list[dict[str, Any]] | None) -> list[Any] | None:
    """CloudFormation's ``Metrics`` (metric math) as moto's query objects."""
    from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat["Metric"]
            dimensions = [Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]
            metric_stat = MetricStat(
                Metric(metric["MetricName"], metric["Namespace"], dimensions),
                str(stat["Period"]),
                str(stat["Stat"]),
                stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                str(query["Id"]),
                query.get("Label"),  # type: ignore[arg-type]
                query.get("Period"),  # type: ignore[arg-type]
                str(query.get("ReturnData", True)).lower(),
                query.get("Expression"),
                metric_stat,
            )
        )
    return queries


def _version_attribute(self: Any, attribute_name: str) -> str:
    """``Fn::GetAtt Version.Version`` (moto's ``AWS::Lambda::Version`` answers no attribute)."""
    if attribute_name == "Version":
        return str(self.version)
    raise NotImplementedError(f"Fn::GetAtt {{0}}.{attribute_name} is not supported locally")


def register() -> None:
    """Make moto's CloudFormation see the models above (its model map is cached on first use)."""
    from moto.awslambda.models import LambdaVersion
    from moto.cloudformation import parsing

    LambdaVersion.get_cfn_attribute = _version_attribute  # type: ignore[attr-defined]

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    models = parsing.get_model_map()
    assert "AWS::Lambda::Alias" in models and "AWS::CloudWatch::Alarm" in models
