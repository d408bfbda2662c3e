"""The CloudFormation template a customer deploys to onboard an AWS account, handed out
with this cloud account's values filled in as parameter defaults (the external ID ZeroCloud
generated, the role name of the registered ARN, the region whose stack makes the role)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib.resources import files

from zc_common.errors import NotFound

from zc_api.models import CloudAccount

TEMPLATE_NAME = "customer-account.yaml"
_PARAMETER = re.compile(r"^  ([A-Za-z0-9]+):\s*$")
_DEFAULT = re.compile(r"^    Default:")


@dataclass(frozen=True)
class OnboardingTemplate:
    text: str
    filled: dict[str, str] = field(default_factory=dict)
    """Parameters given this cloud account's value as their default."""
    to_enter: dict[str, str] = field(default_factory=dict)
    """Parameters whoever deploys it must enter, with what to enter."""


def role_name(role_arn: str) -> str:
    """The role's name: what follows the last "/" of its ARN (a path comes before it)."""
    return role_arn.rsplit("/", 1)[-1]


def wanted_defaults(cloud_account: CloudAccount) -> dict[str, str]:
    return {
        "ExternalId": cloud_account.external_id,
        "RoleName": role_name(cloud_account.role_arn),
        "RoleRegion": (cloud_account.regions or ["us-east-1"])[0],
    }


def read_template() -> str:
    try:
        return files("zc_api.cloudaccounts").joinpath("templates", TEMPLATE_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(
            f"The CloudFormation template ({TEMPLATE_NAME}) is not installed with this ZeroCloud: "
            "ask your operator for it (it is deploy/aws/customer-account.yaml in the ZeroCloud repository)."
        ) from None


def with_defaults(template: str, defaults: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``template`` with ``Default:`` set for each named parameter of its top-level
    Parameters block (replaced where there is one); also answers which were set.
    Parameters it cannot find are left alone."""
    lines = template.splitlines(keepends=True)
    out: list[str] = []
    filled: dict[str, str] = {}
    in_parameters, current = False, None

    def close(name: str | None) -> None:
        # A parameter without a Default line gets one right under its name.
        if name in defaults and name not in filled:
            index = next(i for i in range(len(out) - 1, -1, -1) if _PARAMETER.match(out[i].rstrip("\n")))
            out.insert(index + 1, f"    Default: {json.dumps(defaults[name])}\n")
            filled[name] = defaults[name]

    for line in lines:
        bare = line.rstrip("\n")
        if not line.startswith(" ") and bare.strip() and not bare.lstrip().startswith("#"):
            if in_parameters:
                close(current)
            in_parameters, current = bare.startswith("Parameters:"), None
            out.append(line)
            continue
        if in_parameters:
            match = _PARAMETER.match(bare)
            if match:
                close(current)
                current = match.group(1)
            elif current in defaults and _DEFAULT.match(bare):
                out.append(f"    Default: {json.dumps(defaults[current])}\n")
                filled[current] = defaults[current]
                continue
        out.append(line)
    if in_parameters:
        close(current)
    return "".join(out), filled


def customer_template(cloud_account: CloudAccount) -> OnboardingTemplate:
    """The template for ``cloud_account``: defaults filled where the template allows, and
    what is left to enter (ZeroCloud's own AWS account id, which only the operator knows)."""
    wanted = wanted_defaults(cloud_account)
    text, filled = with_defaults(read_template(), wanted)
    to_enter = {name: value for name, value in wanted.items() if name not in filled}
    to_enter["ZeroCloudAccountId"] = "the 12-digit id of the AWS account ZeroCloud runs in (ask your operator)"
    header = [
        f"# ZeroCloud onboarding of AWS account {cloud_account.upstream_account_id} "
        f"(cloud account {cloud_account.id}, {cloud_account.name}).",
        f"# Filled in as parameter defaults: {', '.join(sorted(filled)) or 'none'}.",
        f"# Enter when you create the stack: {', '.join(sorted(to_enter))}.",
    ]
    return OnboardingTemplate(text="\n".join(header) + "\n" + text, filled=filled, to_enter=to_enter)
