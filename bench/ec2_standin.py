"""A fast stand-in for the two AWS calls a sweep makes: STS AssumeRole and EC2
DescribeInstances (the query API's XML, in AWS's response shape, one reservation per
instance as one RunInstances each makes, NextToken paging at MaxResults). moto takes
minutes to launch and page 10,000 instances; this answers a 1,000-instance page in a
few milliseconds, from pages rendered before the clock starts.

    python bench/ec2_standin.py PORT

``POST /standin/prepare?instances=N&run=R&owners=K&domain=D`` renders a fresh fleet (ids
distinct per run); ``GET /standin/stats`` answers its DescribeInstances calls and the
seconds it spent answering them since the last prepare."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "111111111111"
LAUNCHED = "2026-12-06T08:00:00.000Z"


def _instance(index: int, run: int, owner: str) -> str:
    instance_id = f"i-{run:02x}{index:015x}"
    octets = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
    eni = f"eni-{run:02x}{index:015x}"
    return (
        f"<item><reservationId>r-{run:02x}{index:015x}</reservationId><ownerId>{ACCOUNT}</ownerId>"
        "<groupSet/><instancesSet><item>"
        f"<instanceId>{instance_id}</instanceId><imageId>ami-12c6146b</imageId>"
        "<instanceState><code>16</code><name>running</name></instanceState>"
        f"<privateDnsName>ip-{octets.replace('.', '-')}.ec2.internal</privateDnsName><dnsName/>"
        "<reason/><amiLaunchIndex>0</amiLaunchIndex><productCodes/>"
        f"<instanceType>t3.micro</instanceType><launchTime>{LAUNCHED}</launchTime>"
        "<placement><availabilityZone>us-east-1a</availabilityZone><groupName/><tenancy>default</tenancy></placement>"
        "<monitoring><state>disabled</state></monitoring><subnetId>subnet-0a1b2c3d</subnetId>"
        f"<vpcId>vpc-0a1b2c3d</vpcId><privateIpAddress>{octets}</privateIpAddress>"
        "<sourceDestCheck>true</sourceDestCheck>"
        "<groupSet><item><groupId>sg-0a1b2c3d</groupId><groupName>default</groupName></item></groupSet>"
        "<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType>"
        "<rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName>"
        f"<ebs><volumeId>vol-{run:02x}{index:015x}</volumeId><status>attached</status>"
        f"<attachTime>{LAUNCHED}</attachTime><deleteOnTermination>true</deleteOnTermination></ebs></item>"
        "</blockDeviceMapping><virtualizationType>hvm</virtualizationType>"
        f"<clientToken>{uuid.UUID(int=index)}</clientToken>"
        "<tagSet>"
        f"<item><key>owner</key><value>{owner}</value></item>"
        f"<item><key>Name</key><value>bench-{index}</value></item>"
        "</tagSet>"
        "<hypervisor>xen</hypervisor><networkInterfaceSet><item>"
        f"<networkInterfaceId>{eni}</networkInterfaceId><subnetId>subnet-0a1b2c3d</subnetId>"
        f"<vpcId>vpc-0a1b2c3d</vpcId><ownerId>{ACCOUNT}</ownerId><status>in-use</status>"
        f"<privateIpAddress>{octets}</privateIpAddress><sourceDestCheck>true</sourceDestCheck>"
        "<groupSet><item><groupId>sg-0a1b2c3d</groupId><groupName>default</groupName></item></groupSet>"
        f"<attachment><attachmentId>eni-attach-{run:02x}{index:015x}</attachmentId><deviceIndex>0</deviceIndex>"
        f"<status>attached</status><attachTime>{LAUNCHED}</attachTime>"
        "<deleteOnTermination>true</deleteOnTermination></attachment>"
        f"<privateIpAddressesSet><item><privateIpAddress>{octets}</privateIpAddress><primary>true</primary></item>"
        "</privateIpAddressesSet></item></networkInterfaceSet>"
        "<ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>"
        "<cpuOptions><coreCount>1</coreCount><threadsPerCore>2</threadsPerCore></cpuOptions>"
        "<metadataOptions><state>applied</state><httpTokens>required</httpTokens>"
        "<httpPutResponseHopLimit>2</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint></metadataOptions>"
        "</item></instancesSet></item>"
    )


class Fleet:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[str] = []
        self.calls = 0
        self.seconds = 0.0

    def prepare(self, instances: int, run: int, owners: int, domain: str) -> None:
        items = [_instance(n, run, f"dev{n % owners}@{domain}") for n in range(instances)]
        with self.lock:
            self.items, self.calls, self.seconds = items, 0, 0.0

    def page(self, token: str | None, size: int) -> bytes:
        start = int(token) if token else 0
        chunk = self.items[start : start + size]
        following = start + size
        next_token = f"<nextToken>{following}</nextToken>" if following < len(self.items) else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>{uuid.uuid4()}</requestId><reservationSet>{''.join(chunk)}</reservationSet>"
            f"{next_token}</DescribeInstancesResponse>"
        ).encode()


def _assume_role(form: dict[str, list[str]]) -> bytes:
    role_arn = form.get("RoleArn", [f"arn:aws:iam::{ACCOUNT}:role/ZeroCloud"])[0]
    session = form.get("RoleSessionName", ["zerocloud"])[0]
    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        "<Credentials><AccessKeyId>ASIABENCHSTANDIN0001</AccessKeyId>"
        "<SecretAccessKey>benchbenchbenchbenchbenchbenchbenchbench</SecretAccessKey>"
        "<SessionToken>FwoGZXIvYXdzEBenchStandInSessionToken</SessionToken>"
        f"<Expiration>{expires}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>AROABENCHSTANDIN:{session}</AssumedRoleId>"
        f"<Arn>{role_arn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/{session}</Arn>"
        "</AssumedRoleUser></AssumeRoleResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></AssumeRoleResponse>"
    ).encode()


FLEET = Fleet()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return None

    def _answer(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if urlsplit(self.path).path == "/standin/stats":
            with FLEET.lock:
                stats = {"describe_calls": FLEET.calls, "seconds": FLEET.seconds}
            self._answer(200, json.dumps(stats).encode(), "application/json")
        else:
            self._answer(404, b"")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        started = time.perf_counter()
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == "/standin/prepare":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            FLEET.prepare(int(query["instances"]), int(query["run"]), int(query["owners"]), query["domain"])
            self._answer(200, b"{}", "application/json")
            return
        form = parse_qs(body.decode())
        action = form.get("Action", [""])[0]
        if action == "AssumeRole":
            self._answer(200, _assume_role(form))
        elif action == "DescribeInstances":
            page = FLEET.page(form.get("NextToken", [None])[0], int(form.get("MaxResults", ["1000"])[0]))
            self._answer(200, page)
            with FLEET.lock:
                FLEET.calls += 1
                FLEET.seconds += time.perf_counter() - started
        else:
            self._answer(400, f"<Response><Errors><Error><Code>InvalidAction</Code><Message>{action} is not "
                              "served by the bench stand-in</Message></Error></Errors></Response>".encode())


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
