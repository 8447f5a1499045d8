"""template.yaml → a CloudFormation stack in moto (SAM translated locally, state machines on the real ASL engine)."""

from __future__ import annotations

import copy
import io
import json
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from cfnlint.decode import cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from localcloud.intrinsics import attribute_of, resolve

ClientFactory = Callable[[str], Any]

# SAM adds these by ARN itself; a name-only reference in `Policies` is looked up here.
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, names in {
        "service-role/": [
            "AWSLambdaBasicExecutionRole",
            "AWSLambdaKinesisExecutionRole",
            "AWSLambdaSQSQueueExecutionRole",
            "AWSLambdaDynamoDBExecutionRole",
            "AWSLambdaVPCAccessExecutionRole",
            "AWSLambdaRole",
        ],
        "": [
            "AWSXrayWriteOnlyAccess",
            "AWSXRayDaemonWriteAccess",
            "AmazonS3ReadOnlyAccess",
            "AmazonDynamoDBReadOnlyAccess",
            "CloudWatchLambdaInsightsExecutionRolePolicy",
        ],
    }.items()
    for name in names
}

_PLACEHOLDER_KEY = "placeholder.zip"
log = logging.getLogger("localcloud.deploy")


class DeployError(RuntimeError):
    """The stack could not be created; the message carries moto's reasons."""


@dataclass(frozen=True)
class DeployedFunction:
    """A function of the SAM template, with where its code and layers live in the project."""

    logical_id: str
    name: str
    arn: str
    code_uri: str | None
    layers: tuple[str, ...]


@dataclass
class Deployment:
    """What was deployed and how to name it."""

    stack_name: str
    region: str
    account: str
    template_dir: Path
    sam: dict[str, Any]
    translated: dict[str, Any]
    parameters: dict[str, str]
    resources: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    functions: dict[str, DeployedFunction] = field(default_factory=dict)
    layers: dict[str, str | None] = field(default_factory=dict)

    def refs(self) -> dict[str, str]:
        """Values of ``Ref`` for parameters, pseudo parameters and created resources."""
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/local",
            "AWS::NoValue": "",
        }
        return {**pseudo, **self.parameters, **{k: v for k, v in self.resources.items() if v}}

    def getatt(self, name: str, attr: str) -> str:
        """``Fn::GetAtt`` of a created resource."""
        return attribute_of(self.types.get(name, ""), self.resources.get(name, ""), attr, self.region, self.account)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML or JSON template into plain dicts (short-form tags understood)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        node = cfn_yaml.load(str(path))
    plain: dict[str, Any] = json.loads(json.dumps(node))
    return plain


def _parameter_values(sam: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, spec in sam.get("Parameters", {}).items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif isinstance(spec, dict) and "Default" in spec:
            default = spec["Default"]
            values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    unknown = set(overrides) - set(values)
    if unknown:
        raise DeployError(f"unknown template parameters: {sorted(unknown)}")
    return values


def _load_definition(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return json.dumps(data, indent=2)


def _layer_refs(value: Any, sam_layers: set[str]) -> list[str]:
    refs = []
    for item in value or []:
        if isinstance(item, dict) and item.get("Ref") in sam_layers:
            refs.append(str(item["Ref"]))
        else:
            log.info("layer %s is not a layer of this template; not loaded locally", item)
    return refs


class _Preparer:
    """Rewrites local code/definition paths so that samtranslator accepts the template."""

    def __init__(self, sam: dict[str, Any], template_dir: Path, bucket: str) -> None:
        self.sam = copy.deepcopy(sam)
        self.template_dir = template_dir
        self.s3_uri = f"s3://{bucket}/{_PLACEHOLDER_KEY}"
        self.code_uris: dict[str, str | None] = {}
        self.layer_uris: dict[str, str | None] = {}
        self.layer_refs: dict[str, tuple[str, ...]] = {}
        self.definitions: dict[str, str] = {}

    def _local(self, value: Any) -> str | None:
        return value if isinstance(value, str) and not value.startswith("s3://") else None

    def run(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.sam.get("Resources", {})
        fn_globals = self.sam.get("Globals", {}).get("Function", {})
        sam_layers = {lid for lid, r in resources.items() if r.get("Type") == "AWS::Serverless::LayerVersion"}
        global_code = self._local(fn_globals.get("CodeUri"))
        if global_code is not None:
            fn_globals["CodeUri"] = self.s3_uri
        for lid, res in resources.items():
            props = res.setdefault("Properties", {})
            kind = res.get("Type")
            if kind == "AWS::Serverless::Function":
                local = self._local(props.get("CodeUri"))
                self.code_uris[lid] = local or (global_code if "CodeUri" not in props else None)
                if local is not None:
                    props["CodeUri"] = self.s3_uri
                self.layer_refs[lid] = tuple(
                    _layer_refs(fn_globals.get("Layers"), sam_layers) + _layer_refs(props.get("Layers"), sam_layers)
                )
            elif kind == "AWS::Serverless::LayerVersion":
                local = self._local(props.get("ContentUri"))
                self.layer_uris[lid] = local
                if local is not None:
                    props["ContentUri"] = self.s3_uri
            elif kind == "AWS::Serverless::StateMachine":
                self._prepare_state_machine(lid, props)
        return self.sam

    def _prepare_state_machine(self, lid: str, props: dict[str, Any]) -> None:
        local = self._local(props.get("DefinitionUri"))
        if local is not None:
            text = _load_definition(self.template_dir / local)
            del props["DefinitionUri"]
            props["Definition"] = json.loads(text)
            self.definitions[lid] = text
        elif isinstance(props.get("Definition"), dict):
            self.definitions[lid] = json.dumps(props["Definition"], indent=2)

    def patch_state_machines(self, translated: dict[str, Any]) -> None:
        """Render ``DefinitionSubstitutions`` into ``DefinitionString`` (all moto reads) with ``Fn::Sub``."""
        for lid, text in self.definitions.items():
            res = translated["Resources"].get(lid)
            if res is None or res.get("Type") != "AWS::StepFunctions::StateMachine":
                continue
            props = res["Properties"]
            substitutions = props.pop("DefinitionSubstitutions", None)
            props.pop("DefinitionS3Location", None)
            props["DefinitionString"] = {"Fn::Sub": [text, substitutions]} if substitutions else text


def _placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("README.txt", "localcloud runs the project's code from disk; this is a placeholder.\n")
    return buf.getvalue()


def translate(sam: dict[str, Any], parameters: Mapping[str, str], region: str) -> dict[str, Any]:
    """Apply the SAM transform locally (no AWS call: the managed-policy map is static)."""
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    # Without a feature-toggle config, every DeploymentPreference warns that a toggle is unknown.
    toggles = logging.getLogger("samtranslator.feature_toggle.feature_toggle")
    level = toggles.level
    toggles.setLevel(logging.ERROR)
    try:
        result: dict[str, Any] = translator.translate(
            copy.deepcopy(sam), parameter_values=dict(parameters), get_managed_policy_map=lambda: MANAGED_POLICIES
        )
    finally:
        toggles.setLevel(level)
    plain: dict[str, Any] = json.loads(json.dumps(result))
    return plain


# Boolean properties of event source mappings a template may set from a String parameter.
_BOOLEAN_MAPPING_PROPERTIES = ("BisectBatchOnFunctionError", "Enabled")


def coerce_parameter_booleans(translated: dict[str, Any], parameters: Mapping[str, str]) -> None:
    """Give boolean mapping properties set by ``Ref`` to a ``"true"``/``"false"`` parameter a boolean.

    CloudFormation converts the string to the boolean the property takes; moto keeps the string, and
    ``"false"`` would read as true.
    """
    for res in translated.get("Resources", {}).values():
        if res.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = res.get("Properties", {})
        for name in _BOOLEAN_MAPPING_PROPERTIES:
            value = props.get(name)
            if isinstance(value, dict) and str(value.get("Ref")) in parameters:
                text = parameters[str(value["Ref"])].strip().lower()
                if text in ("true", "false"):
                    props[name] = text == "true"


def deploy(
    client: ClientFactory,
    template: Path,
    *,
    stack_name: str,
    region: str,
    parameters: Mapping[str, str],
    enable_asl: Callable[[], None],
) -> Deployment:
    """Create the stack in moto and move its state machines to the real ASL engine.

    ``enable_asl`` turns moto's ``stepfunctions.execute_state_machine`` on; it is called after the
    stack exists because CloudFormation writes state machines into the store the flag hides.
    """
    sam = load_template(template)
    account = str(client("sts").get_caller_identity()["Account"])
    values = _parameter_values(sam, parameters)
    bucket = f"{stack_name.lower()}-artifacts"[:63]
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=_PLACEHOLDER_KEY, Body=_placeholder_zip())

    prep = _Preparer(sam, template.parent, bucket)
    translated = translate(prep.run(), values, region)
    prep.patch_state_machines(translated)
    coerce_parameter_booleans(translated, values)

    cfn = client("cloudformation")
    # moto warns once per resource type its CloudFormation skips; postdeploy reports those itself.
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning)
    moto_logger = logging.getLogger("moto")
    level = moto_logger.level
    moto_logger.setLevel(logging.ERROR)
    try:
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        dep = _describe(cfn, Deployment(stack_name, region, account, template.parent, sam, translated, values))
    finally:
        moto_logger.setLevel(level)
    for lid, code_uri in prep.code_uris.items():
        name = dep.resources[lid]
        dep.functions[lid] = DeployedFunction(lid, name, dep.getatt(lid, "Arn"), code_uri, prep.layer_refs[lid])
    dep.layers = prep.layer_uris
    _move_state_machines(client("stepfunctions"), dep, enable_asl)
    return dep


def _describe(cfn: Any, dep: Deployment) -> Deployment:
    stack = cfn.describe_stacks(StackName=dep.stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        events = cfn.describe_stack_events(StackName=dep.stack_name)["StackEvents"]
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if e.get("ResourceStatusReason")
        ]
        raise DeployError(f"stack {dep.stack_name} is {stack['StackStatus']}: {'; '.join(reasons)}")
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=dep.stack_name):
        for item in page["StackResourceSummaries"]:
            dep.types[item["LogicalResourceId"]] = item["ResourceType"]
            dep.resources[item["LogicalResourceId"]] = item.get("PhysicalResourceId") or ""
    return dep


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def _rendered_definition(dep: Deployment, lid: str) -> str | None:
    """The definition of state machine `lid` with its ``DefinitionSubstitutions`` applied (None: none).

    moto's ``Fn::Sub`` runs ``string.Template`` over the text, which turns ``$$`` (the context
    object in ASL paths such as ``$$.Map.Item.Value``) into ``$``; the substitution is done here
    instead, like Step Functions does it: only ``${Name}`` of a given name is replaced.
    """
    props = dep.translated["Resources"].get(lid, {}).get("Properties", {})
    sub = props.get("DefinitionString")
    if not isinstance(sub, dict) or not isinstance(sub.get("Fn::Sub"), list):
        return None
    text, variables = sub["Fn::Sub"]
    values = {name: str(resolve(value, dep.refs(), dep.getatt)) for name, value in variables.items()}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), str(text))


def _move_state_machines(sfn: Any, dep: Deployment, enable_asl: Callable[[], None]) -> None:
    machines = {
        lid: dep.resources[lid]
        for lid, kind in dep.types.items()
        if kind == "AWS::StepFunctions::StateMachine" and dep.resources.get(lid)
    }
    described = {lid: sfn.describe_state_machine(stateMachineArn=arn) for lid, arn in machines.items()}
    enable_asl()
    for lid, desc in described.items():
        kwargs: dict[str, Any] = {
            "name": desc["name"],
            "definition": _rendered_definition(dep, lid) or desc["definition"],
            "roleArn": desc["roleArn"],
            "type": desc.get("type", "STANDARD"),
        }
        if desc.get("tracingConfiguration"):
            kwargs["tracingConfiguration"] = desc["tracingConfiguration"]
        arn = sfn.create_state_machine(**kwargs)["stateMachineArn"]
        if arn != machines[lid]:
            log.warning("state machine %s re-created as %s (was %s)", lid, arn, machines[lid])
            dep.resources[lid] = arn
