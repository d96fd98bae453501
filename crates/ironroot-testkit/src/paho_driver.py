"""Scripted paho-mqtt client for ironroot's integration tests (driven by ironroot_testkit::mqtt::Paho).

Usage: python3 paho_driver.py '<json spec>'

The spec names the connection (host, port, TLS files, client id, protocol 4 or 5, clean
session / clean start, session expiry, keep-alive, will) and a list of steps. Every observable
protocol event is printed as one JSON object per line, flushed at once, so the Rust test can
follow the client while it runs:

  {"ev": "connack", "rc": 0, "session_present": false, "props": {...v5 CONNACK properties}}
  {"ev": "suback", "codes": [1]}
  {"ev": "puback", "mid": 1, "rc": 0}
  {"ev": "message", "topic": "...", "payload": "...", "qos": 1, "retain": false, "dup": false}
  {"ev": "disconnect", "rc": 142}
  {"ev": "done"}

Steps: ["subscribe", filter, qos, {options}] (options: no_local, rap, retain_handling, sub_id),
["unsubscribe", filter], ["publish", topic, payload, qos, retain, {v5 properties}] (CorrelationData
as text; TopicAlias with an empty topic sends alias-only), ["sleep", seconds], ["wait_messages", n, timeout], ["wait_disconnect",
timeout], ["disconnect"] (normal DISCONNECT), ["disconnect_with_will"] (v5 reason 0x04),
["abort"] (close the socket without DISCONNECT), ["hang", seconds] (stop the network loop:
no more PINGREQ, the broker's keep-alive must expire).
"""

import json
import os
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

spec = json.loads(sys.argv[1])
lock = threading.Lock()
messages = []
acks = {}
subacks = []
disconnected = threading.Event()
connected = threading.Event()
cond = threading.Condition()


def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def rc_value(rc):
    if hasattr(rc, "value"):
        return rc.value
    if hasattr(rc, "getId"):
        return rc.getId(rc.getName())
    return int(rc)


v5 = spec.get("protocol", 5) == 5
client = mqtt.Client(
    CallbackAPIVersion.VERSION2,
    client_id=spec["client_id"],
    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    clean_session=None if v5 else spec.get("clean", True),
)
client.tls_set(ca_certs=spec["ca"], certfile=spec.get("cert"), keyfile=spec.get("key"))
if spec.get("max_inflight"):
    client.max_inflight_messages_set(spec["max_inflight"])


def on_connect(c, userdata, flags, rc, props):
    cprops = props.json() if v5 and props is not None else {}
    emit({"ev": "connack", "rc": rc_value(rc), "session_present": bool(flags.session_present),
          "props": cprops})
    connected.set()


def on_disconnect(c, userdata, flags, rc, props):
    emit({"ev": "disconnect", "rc": rc_value(rc)})
    disconnected.set()
    with cond:
        cond.notify_all()


def on_subscribe(c, userdata, mid, rcs, props):
    codes = [rc_value(r) for r in rcs]
    emit({"ev": "suback", "mid": mid, "codes": codes})
    with cond:
        subacks.append(mid)
        cond.notify_all()


def on_unsubscribe(c, userdata, mid, rcs, props):
    emit({"ev": "unsuback", "mid": mid, "codes": [rc_value(r) for r in rcs] if rcs else []})
    with cond:
        subacks.append(mid)
        cond.notify_all()


def on_publish(c, userdata, mid, rc, props):
    emit({"ev": "puback", "mid": mid, "rc": rc_value(rc)})
    with cond:
        acks[mid] = rc_value(rc)
        cond.notify_all()


def on_message(c, userdata, msg):
    props = {}
    if v5 and msg.properties is not None:
        for name in ("MessageExpiryInterval", "ContentType", "ResponseTopic",
                     "SubscriptionIdentifier", "TopicAlias"):
            if hasattr(msg.properties, name):
                props[name] = getattr(msg.properties, name)
        if hasattr(msg.properties, "CorrelationData"):
            props["CorrelationData"] = msg.properties.CorrelationData.decode("utf-8", "replace")
        if hasattr(msg.properties, "UserProperty"):
            props["UserProperty"] = msg.properties.UserProperty
    emit({
        "ev": "message",
        "topic": msg.topic,
        "payload": msg.payload.decode("utf-8", "replace"),
        "qos": msg.qos,
        "retain": bool(msg.retain),
        "dup": bool(msg.dup),
        "props": props,
    })
    with cond:
        messages.append(msg)
        cond.notify_all()


client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.on_subscribe = on_subscribe
client.on_unsubscribe = on_unsubscribe
client.on_publish = on_publish
client.on_message = on_message
client.reconnect_delay_set(3600, 3600)  # never reconnect on its own

will = spec.get("will")
if will:
    wprops = None
    if v5 and will.get("delay"):
        wprops = Properties(PacketTypes.WILLMESSAGE)
        wprops.WillDelayInterval = will["delay"]
    client.will_set(will["topic"], will.get("payload", ""), will.get("qos", 0), will.get("retain", False), wprops)

cprops = None
if v5:
    cprops = Properties(PacketTypes.CONNECT)
    cprops.SessionExpiryInterval = spec.get("session_expiry", 0)
    if spec.get("receive_max"):
        cprops.ReceiveMaximum = spec["receive_max"]
    if spec.get("topic_alias_max"):
        cprops.TopicAliasMaximum = spec["topic_alias_max"]

try:
    if v5:
        client.connect(spec.get("host", "127.0.0.1"), spec["port"], spec.get("keepalive", 30),
                       clean_start=spec.get("clean", True), properties=cprops)
    else:
        client.connect(spec.get("host", "127.0.0.1"), spec["port"], spec.get("keepalive", 30))
except Exception as e:  # TLS refusal, connection reset
    emit({"ev": "connect_error", "error": f"{type(e).__name__}: {e}"})
    emit({"ev": "done"})
    sys.exit(0)

hang = any(s[0] == "hang" for s in spec.get("steps", []))
if hang:
    # Read the CONNACK ourselves, then never touch the socket again: no PINGREQ goes out.
    deadline = time.time() + 5
    while not connected.is_set() and time.time() < deadline:
        client.loop(timeout=0.1)
else:
    client.loop_start()
    if not connected.wait(5):
        emit({"ev": "connect_error", "error": "no CONNACK within 5 s"})
        emit({"ev": "done"})
        os._exit(0)

if disconnected.is_set():
    emit({"ev": "done"})
    os._exit(0)


def wait_until(pred, timeout):
    deadline = time.time() + timeout
    with cond:
        while not pred():
            left = deadline - time.time()
            if left <= 0:
                return False
            cond.wait(left)
    return True


for step in spec.get("steps", []):
    op = step[0]
    if op == "subscribe":
        opts = step[3] if len(step) > 3 else {}
        if v5:
            so = SubscribeOptions(qos=step[2], noLocal=opts.get("no_local", False),
                                  retainAsPublished=opts.get("rap", False),
                                  retainHandling=opts.get("retain_handling", 0))
            sprops = None
            if opts.get("sub_id"):
                sprops = Properties(PacketTypes.SUBSCRIBE)
                sprops.SubscriptionIdentifier = opts["sub_id"]
            _, mid = client.subscribe(step[1], options=so, properties=sprops)
        else:
            _, mid = client.subscribe(step[1], step[2])
        if not wait_until(lambda: mid in subacks or disconnected.is_set(), 5):
            emit({"ev": "timeout", "step": "subscribe"})
    elif op == "unsubscribe":
        _, mid = client.unsubscribe(step[1])
        if not wait_until(lambda: mid in subacks or disconnected.is_set(), 5):
            emit({"ev": "timeout", "step": "unsubscribe"})
    elif op == "publish":
        pprops = None
        if v5 and len(step) > 5 and step[5]:
            pprops = Properties(PacketTypes.PUBLISH)
            for k, v in step[5].items():
                if k == "UserProperty":
                    pprops.UserProperty = [tuple(x) for x in v]
                elif k == "CorrelationData":
                    pprops.CorrelationData = v.encode("utf-8")
                else:
                    setattr(pprops, k, v)
        info = client.publish(step[1], step[2], step[3], step[4], properties=pprops)
        emit({"ev": "published", "mid": info.mid, "rc": info.rc})
        if step[3] > 0:
            if not wait_until(lambda: info.mid in acks or disconnected.is_set(), 5):
                emit({"ev": "timeout", "step": "publish", "mid": info.mid})
    elif op == "sleep":
        time.sleep(step[1])
    elif op == "wait_file":
        # ["wait_file", path, timeout]: block until the test creates `path` (a go signal that
        # does not depend on how fast this process started).
        deadline = time.time() + step[2]
        while not os.path.exists(step[1]):
            if time.time() >= deadline:
                emit({"ev": "timeout", "step": "wait_file"})
                break
            time.sleep(0.02)
    elif op == "wait_messages":
        n = step[1]
        wait_until(lambda: len(messages) >= n or disconnected.is_set(), step[2])
    elif op == "wait_disconnect":
        disconnected.wait(step[1])
    elif op == "disconnect":
        client.disconnect()
        disconnected.wait(3)
    elif op == "disconnect_with_will":
        client.disconnect(reasoncode=mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        disconnected.wait(3)
    elif op == "abort":
        emit({"ev": "done"})
        os._exit(0)  # the kernel closes the socket: no DISCONNECT packet
    elif op == "hang":
        t0 = time.time()
        sock = client.socket()
        sock.settimeout(step[1])
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    break
        except ssl.SSLError as e:
            emit({"ev": "socket_error", "error": str(e)})
        except OSError as e:
            emit({"ev": "socket_error", "error": str(e)})
        emit({"ev": "closed_by_broker", "after": round(time.time() - t0, 3)})
    else:
        raise SystemExit(f"unknown step {op}")

emit({"ev": "done"})
os._exit(0)
