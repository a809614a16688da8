"""Restate example services on the real Python SDK (PyPI `restate-sdk`), served by
hypercorn: `hypercorn app:app --bind 127.0.0.1:9081` (cleartext HTTP/2 with prior
knowledge and HTTP/1.1 on the same port).

The same shapes as the Rust examples (examples/services), so one test script fits both:
Greeter (service), Counter (virtual object), Approval/Approver (awakeables), Signals
(named signals) and the Signup workflow (a durable promise completed by a shared handler).
"""

import os
from datetime import timedelta

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello, {name}!"


counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("count") or 0) + delta
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("count") or 0


@greeter.handler(name="greetLater")
async def greet_later(ctx: Context, name: str) -> str:
    """Sends Counter/{name}/add(1) to run one second from now (a delayed one-way call)."""
    ctx.object_send(add, key=name, arg=1, send_delay=timedelta(seconds=1))
    return f"See you later, {name}!"


approval = VirtualObject("Approval")


@approval.handler()
async def request(ctx: ObjectContext, what: str) -> str:
    """Waits on an awakeable whose id `pending` returns; answers "{what}: {answer}"."""
    awakeable_id, answer = ctx.awakeable()
    ctx.set("awakeable", awakeable_id)
    value = await answer
    ctx.clear("awakeable")
    return f"{what}: {value}"


@approval.handler(kind="shared")
async def pending(ctx: ObjectSharedContext) -> str:
    return await ctx.get("awakeable") or ""


approver = Service("Approver")


@approver.handler()
async def decide(ctx: Context, decision: dict) -> None:
    """Resolves (approve) or rejects the awakeable `decision["awakeable"]`."""
    if decision["approve"]:
        ctx.resolve_awakeable(decision["awakeable"], decision["answer"])
    else:
        ctx.reject_awakeable(decision["awakeable"], decision["answer"])


signals = Service("Signals")


@signals.handler(name="waitFor")
async def wait_for(ctx: Context, name: str) -> str:
    """Waits for the named signal on this invocation and returns its value."""
    return await ctx.signal(name)


@signals.handler(name="awaitResult")
async def await_result(ctx: Context, invocation: str) -> str:
    """Waits for invocation `invocation` to complete and returns its result."""
    return await ctx.attach_invocation(invocation)


@signals.handler()
async def send(ctx: Context, delivery: dict) -> None:
    ctx.resolve_signal(delivery["invocation"], delivery["name"], delivery["value"])


signup = Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    """Runs once per key: waits for the promise "email-link" that `click` completes."""
    ctx.set("status", "waiting for the link")
    link = await ctx.promise("email-link").value()
    ctx.set("status", "confirmed")
    return f"{email} confirmed by {link}"


@signup.handler()
async def click(ctx: WorkflowSharedContext, link: str) -> None:
    await ctx.promise("email-link").resolve(link)


@signup.handler()
async def link(ctx: WorkflowSharedContext) -> str:
    return await ctx.promise("email-link").peek() or ""


@signup.handler()
async def status(ctx: WorkflowSharedContext) -> str:
    return await ctx.get("status") or ""


# Request identity: with `IDENTITY_KEYS` (comma-separated `publickeyv1_...` keys, what the
# node logs at start from `request-identity-private-key-pem-file`), only requests signed by
# one of those keys are served; anything else gets 401.
identity_keys = [key.strip() for key in os.environ.get("IDENTITY_KEYS", "").split(",") if key.strip()]

app = restate.app(
    services=[greeter, counter, approval, approver, signals, signup],
    identity_keys=identity_keys or None,
)
