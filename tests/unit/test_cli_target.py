"""Which cloud a CLI command talks to: --stack with its credentials, or the running local cloud."""

from __future__ import annotations

import pytest

from sluice.errors import SluiceError
from sluice_cli.connection import connect
from sluice_cli.main import build_parser

COMMANDS = [["cleanup"], ["redrive", "ingest"], ["rerun", "s3://raw/orders/a.csv"], ["events", "render"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_command_that_reaches_a_stack_takes_its_credentials(command):
    args = build_parser().parse_args([*command, "--stack", "s", "--profile", "p", "--region", "eu-west-1"])
    assert (args.stack, args.profile, args.region, args.endpoint_url) == ("s", "p", "eu-west-1", None)


@pytest.mark.parametrize("flag", ["--profile", "--region", "--endpoint-url"])
def test_credentials_without_a_stack_are_refused_before_anything_is_reached(flag, tmp_path):
    args = build_parser().parse_args(["cleanup", flag, "x"])
    with pytest.raises(SluiceError, match="go with --stack"):
        connect(args, tmp_path)
