"""A fast stand-in for the few AWS calls on the event path, for bench/event_latency_bench.py:
moto cannot carry 200 events/s against thousands of instances (one DescribeInstances took
seconds there), so this answers them from dicts, in AWS's own wire shapes, and counts the
time it spends on each call.

    python bench/aws_standin.py --port 5010

- SQS (JSON protocol): CreateQueue, GetQueueUrl, SendMessage, SendMessageBatch,
  ReceiveMessage (long polling: answers as soon as one message is visible, as SQS does;
  visibility timeouts), DeleteMessage, DeleteMessageBatch, GetQueueAttributes.
- STS (query protocol, XML): AssumeRole, GetCallerIdentity.
- EC2 (EC2 query protocol, XML): DescribeInstances by ``instance-id`` filter or
  ``InstanceId.N``, with MaxResults/NextToken, each instance its own reservation (one
  RunInstances each), items as full as AWS's (so parsing them costs what it does).

Its own routes, under ``/_standin/``: ``POST instances`` (JSON list of {id, type, tags,
launch_time}) makes instances exist; ``GET stats`` the calls, the seconds spent in each
handler and this process's CPU seconds since the last ``POST reset``; ``GET received``
when each message (by MessageId) was first handed out by ReceiveMessage (epoch seconds).

No signatures are checked and nothing persists. A plain asyncio HTTP/1.1 server with
keep-alive (no framework): the point is that its own time stays small beside ours.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import re
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

OWN_ACCOUNT = "000000000000"
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Message:
    message_id: str
    body: str
    md5: str
    sent_at: float
    receive_count: int = 0
    receipt: str = ""


@dataclass
class _Queue:
    name: str
    url: str
    visible: deque[_Message] = field(default_factory=deque)
    in_flight: dict[str, tuple[float, _Message]] = field(default_factory=dict)  # receipt -> (deadline, message)
    deadlines: list[tuple[float, str]] = field(default_factory=list)  # heap of (deadline, receipt)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def requeue_expired(self, now: float) -> None:
        while self.deadlines and self.deadlines[0][0] <= now:
            _, receipt = heapq.heappop(self.deadlines)
            held = self.in_flight.pop(receipt, None)
            if held is not None:
                self.visible.appendleft(held[1])


@dataclass
class _Instance:
    instance_id: str
    instance_type: str
    tags: dict[str, str]
    launch_time: str
    state: str = "running"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - SQS's own checksum


class StandIn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.queues: dict[str, _Queue] = {}
        self.instances: dict[str, _Instance] = {}
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.received: dict[str, float] = {}
        self._cpu_at_reset = time.process_time()
        self._wall_at_reset = time.monotonic()

    # --- HTTP -----------------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, content_type, payload = await self.dispatch(method, target, headers, body)
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                    f"x-amzn-RequestId: {uuid.uuid4()}\r\n\r\n".encode("latin-1") + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        path = target.split("?", 1)[0]
        if path.startswith("/_standin/"):
            return self.own_route(method, path, body)
        started = time.perf_counter()
        waited = 0.0
        amz_target = headers.get("x-amz-target")
        name = "?"
        try:
            if amz_target:  # SQS's JSON protocol
                action = amz_target.rsplit(".", 1)[-1]
                name = f"sqs:{action}"
                request = json.loads(body or b"{}")
                answer, waited = await self.sqs(action, request)
                status, content_type, payload = 200, "application/x-amz-json-1.0", json.dumps(answer).encode()
            else:
                form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
                action = form.get("Action", "?")
                scope = _SCOPE.search(headers.get("authorization", ""))
                service = scope.group(2) if scope else ("sts" if action in ("AssumeRole", "GetCallerIdentity") else "ec2")
                name = f"{service}:{action}"
                status, content_type, payload = 200, "text/xml", self.query(service, action, form).encode()
        except AwsError as error:
            status, content_type, payload = self.error(amz_target is not None, error)
        # Long polling is waiting, not work: the stand-in's own time excludes it.
        self.calls[name] += 1
        self.seconds[name] += time.perf_counter() - started - waited
        return status, content_type, payload

    def error(self, json_protocol: bool, error: AwsError) -> tuple[int, str, bytes]:
        request_id = str(uuid.uuid4())
        if json_protocol:
            body = {"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message}
            return error.status, "application/x-amz-json-1.0", json.dumps(body).encode()
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{error.code}</Code>'
               f"<Message>{escape(error.message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        return error.status, "text/xml", xml.encode()

    def own_route(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        route = path.removeprefix("/_standin/")
        if route == "instances" and method == "POST":
            now = datetime.now(timezone.utc)
            for item in json.loads(body):
                launch = item.get("launch_time") or (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                self.instances[item["id"]] = _Instance(item["id"], item.get("type", "t3.micro"), item.get("tags", {}), launch)
            answer: Any = {"instances": len(self.instances)}
        elif route == "reset" and method == "POST":
            self.calls.clear()
            self.seconds.clear()
            self.received.clear()
            self._cpu_at_reset, self._wall_at_reset = time.process_time(), time.monotonic()
            answer = {}
        elif route == "stats":
            answer = {
                "calls": dict(self.calls), "seconds": dict(self.seconds),
                "cpu_seconds": time.process_time() - self._cpu_at_reset,
                "wall_seconds": time.monotonic() - self._wall_at_reset,
            }
        elif route == "received":
            answer = self.received
        else:
            return 404, "application/json", b'{"detail": "no such route"}'
        return 200, "application/json", json.dumps(answer).encode()

    # --- SQS ------------------------------------------------------------------------------
    def queue(self, url: str | None) -> _Queue:
        name = (url or "").rstrip("/").rsplit("/", 1)[-1]
        found = self.queues.get(name)
        if found is None:
            raise AwsError(400, "QueueDoesNotExist", "The specified queue does not exist.")
        return found

    def _enqueue(self, queue: _Queue, body: str) -> _Message:
        message = _Message(str(uuid.uuid4()), body, _md5(body), time.time())
        queue.visible.append(message)
        queue.arrived.set()
        return message

    async def sqs(self, action: str, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        if action == "CreateQueue":
            name = request["QueueName"]
            url = f"http://127.0.0.1:{self.port}/{OWN_ACCOUNT}/{name}"
            self.queues.setdefault(name, _Queue(name, url))
            return {"QueueUrl": url}, 0.0
        if action == "GetQueueUrl":
            queue = self.queues.get(request["QueueName"])
            if queue is None:
                raise AwsError(400, "QueueDoesNotExist", "The specified queue does not exist.")
            return {"QueueUrl": queue.url}, 0.0
        queue = self.queue(request.get("QueueUrl"))
        if action == "SendMessage":
            message = self._enqueue(queue, request["MessageBody"])
            return {"MessageId": message.message_id, "MD5OfMessageBody": message.md5}, 0.0
        if action == "SendMessageBatch":
            sent = []
            for entry in request["Entries"]:
                message = self._enqueue(queue, entry["MessageBody"])
                sent.append({"Id": entry["Id"], "MessageId": message.message_id, "MD5OfMessageBody": message.md5})
            return {"Successful": sent, "Failed": []}, 0.0
        if action == "ReceiveMessage":
            return await self.receive(queue, request)
        if action == "DeleteMessage":
            queue.in_flight.pop(request["ReceiptHandle"], None)
            return {}, 0.0
        if action == "DeleteMessageBatch":
            done = []
            for entry in request["Entries"]:
                queue.in_flight.pop(entry["ReceiptHandle"], None)  # SQS too answers success for a stale handle
                done.append({"Id": entry["Id"]})
            return {"Successful": done, "Failed": []}, 0.0
        if action == "GetQueueAttributes":
            queue.requeue_expired(time.monotonic())
            return {"Attributes": {
                "ApproximateNumberOfMessages": str(len(queue.visible)),
                "ApproximateNumberOfMessagesNotVisible": str(len(queue.in_flight)),
            }}, 0.0
        raise AwsError(400, "InvalidAction", f"{action} is not served by the stand-in")

    async def receive(self, queue: _Queue, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        most = int(request.get("MaxNumberOfMessages", 1))
        wait = float(request.get("WaitTimeSeconds", 0))
        hide = float(request.get("VisibilityTimeout", 30))
        waited = 0.0
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            queue.requeue_expired(now)
            if queue.visible or now >= deadline:
                break
            queue.arrived.clear()
            paused = time.perf_counter()
            try:
                await asyncio.wait_for(queue.arrived.wait(), deadline - now)
            except TimeoutError:
                pass
            waited += time.perf_counter() - paused
        taken = []
        now_epoch = time.time()
        while queue.visible and len(taken) < most:
            message = queue.visible.popleft()
            message.receive_count += 1
            message.receipt = secrets.token_urlsafe(24)
            queue.in_flight[message.receipt] = (time.monotonic() + hide, message)
            heapq.heappush(queue.deadlines, (time.monotonic() + hide, message.receipt))
            self.received.setdefault(message.message_id, now_epoch)
            taken.append({
                "MessageId": message.message_id, "ReceiptHandle": message.receipt, "MD5OfBody": message.md5,
                "Body": message.body,
                "Attributes": {"ApproximateReceiveCount": str(message.receive_count),
                               "SentTimestamp": str(int(message.sent_at * 1000))},
            })
        return ({"Messages": taken} if taken else {}), waited

    # --- STS and EC2 (query protocols, XML) -----------------------------------------------
    def query(self, service: str, action: str, form: dict[str, str]) -> str:
        request_id = str(uuid.uuid4())
        if service == "sts" and action == "AssumeRole":
            role_arn = form["RoleArn"]
            account, role = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
            session = form.get("RoleSessionName", "session")
            expires = datetime.now(timezone.utc) + timedelta(seconds=int(form.get("DurationSeconds", "3600")))
            return (
                f'<AssumeRoleResponse xmlns="{STS_NS}"><AssumeRoleResult><Credentials>'
                f"<AccessKeyId>ASIA{secrets.token_hex(8).upper()}</AccessKeyId>"
                f"<SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>"
                f"<SessionToken>{secrets.token_urlsafe(180)}</SessionToken>"
                f"<Expiration>{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration></Credentials>"
                f"<AssumedRoleUser><AssumedRoleId>AROA{secrets.token_hex(8).upper()}:{escape(session)}</AssumedRoleId>"
                f"<Arn>arn:aws:sts::{account}:assumed-role/{escape(role)}/{escape(session)}</Arn></AssumedRoleUser>"
                f"</AssumeRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                "</AssumeRoleResponse>"
            )
        if service == "sts" and action == "GetCallerIdentity":
            return (
                f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult>'
                f"<Arn>arn:aws:iam::{OWN_ACCOUNT}:user/zerocloud</Arn><UserId>AIDA{OWN_ACCOUNT}</UserId>"
                f"<Account>{OWN_ACCOUNT}</Account></GetCallerIdentityResult>"
                f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            )
        if service == "ec2" and action == "DescribeInstances":
            return self.describe_instances(form, request_id)
        raise AwsError(400, "InvalidAction", f"{service}:{action} is not served by the stand-in")

    def describe_instances(self, form: dict[str, str], request_id: str) -> str:
        wanted: list[str] | None = None
        ids = [v for k, v in sorted(form.items(), key=lambda kv: _index(kv[0])) if k.startswith("InstanceId.")]
        if ids:
            missing = [i for i in ids if i not in self.instances]
            if missing:
                raise AwsError(400, "InvalidInstanceID.NotFound", f"The instance IDs '{', '.join(missing)}' do not exist")
            wanted = ids
        filters = sorted({k.split(".")[1] for k in form if k.startswith("Filter.")}, key=int)
        for number in filters:
            name = form.get(f"Filter.{number}.Name")
            values = [v for k, v in form.items() if k.startswith(f"Filter.{number}.Value.")]
            if name != "instance-id":
                raise AwsError(400, "InvalidParameterValue", f"The filter '{name}' is not served by the stand-in")
            chosen = [i for i in dict.fromkeys(values) if i in self.instances]
            wanted = chosen if wanted is None else [i for i in wanted if i in set(chosen)]
        if wanted is None:
            wanted = list(self.instances)
        start = int(form.get("NextToken", "0") or 0)
        size = int(form.get("MaxResults", "1000"))
        page = wanted[start : start + size]
        token = f"<nextToken>{start + size}</nextToken>" if start + size < len(wanted) else ""
        reservations = "".join(_reservation(self.instances[i]) for i in page)
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="{EC2_NS}">'
            f"<requestId>{request_id}</requestId><reservationSet>{reservations}</reservationSet>{token}"
            "</DescribeInstancesResponse>"
        )


def _index(key: str) -> int:
    tail = key.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0


_STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


def _reservation(instance: _Instance) -> str:
    """One reservation of one instance, with the fields AWS sends for a plain VPC instance."""
    n = int(instance.instance_id[2:], 16) if instance.instance_id[2:].isalnum() else 0
    ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    dns = f"ip-{ip.replace('.', '-')}.ec2.internal"
    tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in instance.tags.items())
    eni = f"eni-{n:017x}"
    return (
        f"<item><reservationId>r-{n:017x}</reservationId><ownerId>{OWN_ACCOUNT}</ownerId><groupSet/>"
        f"<instancesSet><item><instanceId>{instance.instance_id}</instanceId><imageId>ami-0c02fb55956c7d316</imageId>"
        f"<instanceState><code>{_STATE_CODES.get(instance.state, 16)}</code><name>{instance.state}</name></instanceState>"
        f"<privateDnsName>{dns}</privateDnsName><dnsName/><reason/><keyName>bench</keyName>"
        f"<amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>{instance.instance_type}</instanceType>"
        f"<launchTime>{instance.launch_time}</launchTime>"
        "<placement><availabilityZone>us-east-1a</availabilityZone><groupName/><tenancy>default</tenancy></placement>"
        "<monitoring><state>disabled</state></monitoring><subnetId>subnet-0a1b2c3d4e5f60718</subnetId>"
        f"<vpcId>vpc-0a1b2c3d4e5f60718</vpcId><privateIpAddress>{ip}</privateIpAddress>"
        "<sourceDestCheck>true</sourceDestCheck>"
        "<groupSet><item><groupId>sg-0a1b2c3d4e5f60718</groupId><groupName>default</groupName></item></groupSet>"
        "<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>"
        "<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs>"
        f"<volumeId>vol-{n:017x}</volumeId><status>attached</status><attachTime>{instance.launch_time}</attachTime>"
        "<deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping>"
        "<virtualizationType>hvm</virtualizationType><clientToken/>"
        f"<tagSet>{tags}</tagSet><hypervisor>xen</hypervisor>"
        f"<networkInterfaceSet><item><networkInterfaceId>{eni}</networkInterfaceId>"
        "<subnetId>subnet-0a1b2c3d4e5f60718</subnetId><vpcId>vpc-0a1b2c3d4e5f60718</vpcId><description/>"
        f"<ownerId>{OWN_ACCOUNT}</ownerId><status>in-use</status><macAddress>0a:1b:2c:3d:4e:5f</macAddress>"
        f"<privateIpAddress>{ip}</privateIpAddress><privateDnsName>{dns}</privateDnsName>"
        "<sourceDestCheck>true</sourceDestCheck>"
        "<groupSet><item><groupId>sg-0a1b2c3d4e5f60718</groupId><groupName>default</groupName></item></groupSet>"
        f"<attachment><attachmentId>eni-attach-{n:017x}</attachmentId><deviceIndex>0</deviceIndex>"
        f"<status>attached</status><attachTime>{instance.launch_time}</attachTime>"
        "<deleteOnTermination>true</deleteOnTermination><networkCardIndex>0</networkCardIndex></attachment>"
        f"<privateIpAddressesSet><item><privateIpAddress>{ip}</privateIpAddress>"
        f"<privateDnsName>{dns}</privateDnsName><primary>true</primary></item></privateIpAddressesSet>"
        "<ipv6AddressesSet/><interfaceType>interface</interfaceType></item></networkInterfaceSet>"
        "<ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>"
        "<cpuOptions><coreCount>1</coreCount><threadsPerCore>2</threadsPerCore></cpuOptions>"
        "<capacityReservationSpecification><capacityReservationPreference>open</capacityReservationPreference>"
        "</capacityReservationSpecification><hibernationOptions><configured>false</configured></hibernationOptions>"
        "<metadataOptions><state>applied</state><httpTokens>required</httpTokens><httpPutResponseHopLimit>2"
        "</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint><httpProtocolIpv6>disabled</httpProtocolIpv6>"
        "<instanceMetadataTags>disabled</instanceMetadataTags></metadataOptions>"
        "<enclaveOptions><enabled>false</enabled></enclaveOptions><platformDetails>Linux/UNIX</platformDetails>"
        f"<usageOperation>RunInstances</usageOperation><usageOperationUpdateTime>{instance.launch_time}"
        "</usageOperationUpdateTime><privateDnsNameOptions><hostnameType>ip-name</hostnameType>"
        "<enableResourceNameDnsARecord>false</enableResourceNameDnsARecord>"
        "<enableResourceNameDnsAAAARecord>false</enableResourceNameDnsAAAARecord></privateDnsNameOptions>"
        "<maintenanceOptions><autoRecovery>default</autoRecovery></maintenanceOptions>"
        "<currentInstanceBootMode>legacy-bios</currentInstanceBootMode></item></instancesSet></item>"
    )


async def main(port: int, host: str) -> None:
    stand_in = StandIn(port)
    server = await asyncio.start_server(stand_in.serve, host, port, limit=4 * 1024 * 1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.host))
